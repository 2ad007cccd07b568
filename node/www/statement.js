/*
 * statement.js - the month's statement: the reconciled statements stored by
 * `passerelle reconcile`, and the same month from this node's records
 * alone, with its CSV.
 */
'use strict';

(() => {
	const { t, el, api } = PS;
	const $ = (id) => document.getElementById(id);

	function thisMonth() {
		const d = new Date();
		return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
	}

	const money = PS.formatMoney;

	function net(cents, currency) {
		const s = money(Math.abs(cents), currency);
		if (cents > 0)
			return t('statement.they_owe', { amount: s });
		if (cents < 0)
			return t('statement.we_owe', { amount: s });
		return t('statement.even');
	}

	async function load() {
		const month = $('month').value || thisMonth();
		const q = '?month=' + encodeURIComponent(month);
		history.replaceState(null, '', q);
		$('csv').href = '/api/v1/statement.csv' + q;
		const r = await api('GET', '/api/v1/statement' + q);
		if (r.status !== 200) {
			PS.flash(PS.errorText(r), 'error');
			return;
		}
		PS.flash('');
		const rec = r.data.reconciled || [];
		$('reconciled-rows').replaceChildren(...rec.map((s) => el('tr', {},
			el('td', {}, s.name),
			el('td', {}, el('span', { class: 'badge ' + s.status }, t('statement.status_' + s.status))),
			el('td', { class: 'num' }, money(s.receivable_cents, s.currency)),
			el('td', { class: 'num' }, money(s.payable_cents, s.currency)),
			el('td', {}, net(s.net_cents, s.currency)),
			el('td', { class: 'num' }, s.held_lines ? t('statement.held_lines',
				{ n: s.held_lines, amount: money(s.held_cents, s.currency) }) : '–'),
			el('td', {}, el('a', { href: '/api/v1/statements/' +
				encodeURIComponent(s.peer) + '.csv' + q, download: '' },
				t('statement.lines_csv'))))));
		$('reconciled-none').hidden = rec.length > 0;
		const peers = r.data.peers || [];
		$('statement-rows').replaceChildren(...peers.map((p) => el('tr', { dataset: { peer: p.peer } },
			el('td', {}, p.name),
			el('td', { class: 'num' }, t('statement.visits_units',
				{ visits: p.as_host.visits, units: p.as_host.units })),
			el('td', { class: 'num' }, money(p.as_host.owed_to_us_cents, p.currency)),
			el('td', { class: 'num' }, t('statement.visits_units',
				{ visits: p.as_home.visits, units: p.as_home.units })),
			el('td', { class: 'num' }, money(p.as_home.owed_by_us_cents, p.currency)),
			el('td', {}, net(p.net_cents, p.currency)))));
		$('statement-none').hidden = peers.length > 0;
	}

	PS.start({
		async init() {
			$('month').value = new URLSearchParams(location.search).get('month') || thisMonth();
			$('month-form').addEventListener('submit', (e) => {
				e.preventDefault();
				load();
			});
			await load();
		},
	});
})();
