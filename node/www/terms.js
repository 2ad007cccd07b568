/*
 * terms.js - the terms with each peer space of the directory, one form
 * each; a peer without terms of its own shows the defaults.
 */
'use strict';

(() => {
	const { t, el, api } = PS;

	function field(id, label, input) {
		return [el('label', { for: id }, label), input];
	}

	function check(id, label, checked) {
		return el('div', { class: 'check' },
			el('input', { id, type: 'checkbox', checked: checked || null }),
			el('label', { for: id }, label));
	}

	function peerForm(p) {
		const id = (k) => `${k}-${p.peer}`;
		const h = p.as_host;
		const m = p.as_home;
		const form = el('form', { class: 'panel terms', dataset: { peer: p.peer } },
			el('h2', {}, p.name, ' ', el('span', { class: 'sub' }, p.city)),
			el('p', { class: 'help' }, p.default ? t('terms.defaults') :
				t('terms.updated', { date: PS.formatTime(p.updated_at, true), who: p.updated_by })),
			el('fieldset', {}, el('legend', {}, t('terms.as_host')),
				check(id('accept'), t('terms.accept'), h.accept),
				el('div', { class: 'form-grid' },
					...field(id('rate'), t('terms.rate'), el('input', {
						id: id('rate'), type: 'number', min: '0', step: '0.01',
						value: (h.rate_cents / 100).toFixed(2),
					})),
					...field(id('currency'), t('terms.currency'), el('input', {
						id: id('currency'), maxlength: '3', pattern: '[A-Z]{3}', value: h.currency,
					})),
					...field(id('cap'), t('terms.cap'), el('input', {
						id: id('cap'), type: 'number', min: '0', max: '1000',
						value: h.monthly_cap === null ? '' : String(h.monthly_cap),
					})),
					...field(id('offline'), t('terms.offline'), el('input', {
						id: id('offline'), type: 'number', min: '0', max: '1000',
						value: String(h.offline_allowance),
					})))),
			el('fieldset', {}, el('legend', {}, t('terms.as_home')),
				check(id('roaming'), t('terms.roaming'), m.allow_roaming),
				check(id('per-unit'), t('terms.per_unit'), m.ticket_per_unit)),
			el('button', { type: 'submit', class: 'primary' }, t('terms.save')));
		form.addEventListener('submit', async (e) => {
			e.preventDefault();
			const v = (k) => document.getElementById(id(k));
			const body = {
				accept: v('accept').checked,
				rate_cents: Math.round(parseFloat(v('rate').value || '0') * 100),
				currency: v('currency').value.trim().toUpperCase(),
				monthly_cap: v('cap').value === '' ? null : parseInt(v('cap').value, 10),
				offline_allowance: parseInt(v('offline').value || '0', 10),
				allow_roaming: v('roaming').checked,
				ticket_per_unit: v('per-unit').checked,
			};
			const r = await api('POST', `/api/v1/terms/${encodeURIComponent(p.peer)}`, body);
			if (r.status === 200) {
				PS.flash(t('terms.saved', { name: p.name }), 'ok');
				await load();
			} else {
				PS.flash(PS.errorText(r), 'error');
			}
		});
		return form;
	}

	async function load() {
		const r = await api('GET', '/api/v1/terms');
		if (r.status !== 200) {
			PS.flash(PS.errorText(r), 'error');
			return;
		}
		const box = document.getElementById('peers');
		box.replaceChildren(...r.data.peers.map(peerForm));
		if (r.data.peers.length === 0)
			box.append(el('p', { class: 'empty' }, t('terms.no_peer')));
	}

	PS.start({ init: load });
})();
