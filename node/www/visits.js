/*
 * visits.js - the month's visits, as host (members of any space here) or as
 * home (our members anywhere), with the CSV of the same rows.
 */
'use strict';

(() => {
	const { t, el, api } = PS;
	const $ = (id) => document.getElementById(id);
	let spaces = {};

	function thisMonth() {
		const d = new Date();
		return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
	}

	async function loadSpaces() {
		const r = await fetch('/api/v1/spaces.geojson', { credentials: 'same-origin' });
		if (r.ok)
			for (const f of (await r.json()).features || [])
				spaces[f.properties.id] = f.properties.name;
	}

	function stateText(v) {
		const s = v.status || v.decision;
		let text = t('visit.' + s);
		if (v.reason_code)
			text += ' · ' + t('reason.' + v.reason_code);
		return text;
	}

	async function load() {
		const month = $('month').value || thisMonth();
		const side = document.querySelector('input[name=side]:checked').value;
		const q = `?month=${encodeURIComponent(month)}&side=${side}`;
		history.replaceState(null, '', q);
		$('csv').href = '/api/v1/visit-history.csv' + q;
		const r = await api('GET', '/api/v1/visit-history' + q);
		if (r.status !== 200) {
			PS.flash(PS.errorText(r), 'error');
			return;
		}
		PS.flash('');
		const home = side === 'home';
		const cols = [home ? 'col.host' : 'col.home', 'col.member', 'col.in', 'col.out',
			'col.units', 'col.rate', 'col.state'];
		$('visits-head').replaceChildren(...cols.map((k) => el('th', { scope: 'col' }, t(k))));
		const visits = r.data.visits;
		$('visit-rows').replaceChildren(...visits.map((v) => el('tr', {},
			el('td', {}, spaces[v.host || v.home] || v.host || v.home),
			el('td', {}, home ? v.full_name : (v.display_name || v.member)),
			el('td', {}, PS.formatTime(v.checked_in_at, true)),
			el('td', {}, PS.formatTime(v.checked_out_at, true)),
			el('td', { class: 'num' }, v.units === null ? '–' : String(v.units)),
			el('td', { class: 'num' }, v.rate_cents === null ? '–' : PS.formatMoney(v.rate_cents, v.currency)),
			el('td', {}, stateText(v)))));
		const units = visits.reduce((n, v) => n + (v.units || 0), 0);
		$('summary').textContent = t('visits.summary', { n: visits.length, units });
	}

	PS.start({
		async init() {
			const q = new URLSearchParams(location.search);
			$('month').value = q.get('month') || thisMonth();
			if (q.get('side') === 'home')
				$('side-home').checked = true;
			$('month-form').addEventListener('submit', (e) => {
				e.preventDefault();
				load();
			});
			for (const r of document.querySelectorAll('input[name=side]'))
				r.addEventListener('change', load);
			await loadSpaces();
			await load();
		},
	});
})();
