/*
 * spaces.js - the directory's spaces as a list: name, city, address, opening
 * hours, seats and services, with the GeoJSON for maps.
 */
'use strict';

(() => {
	const { t, el } = PS;
	const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

	function hoursList(hours) {
		if (!hours || typeof hours !== 'object')
			return null;
		const days = DAYS.filter((d) => hours[d]);
		if (days.length === 0)
			return null;
		return el('ul', { class: 'hours' }, ...days.map((d) =>
			el('li', {}, el('span', { class: 'day' }, t('day.' + d)), ' ', String(hours[d]))));
	}

	function card(f, self) {
		const p = f.properties;
		const facts = [];
		const add = (k, v) => {
			if (v !== null && v !== undefined && v !== '')
				facts.push(el('dt', {}, t(k)), el('dd', {}, v));
		};
		add('spaces.address', p.address);
		add('spaces.capacity', p.capacity !== undefined ? t('spaces.seats', { n: p.capacity }) : null);
		add('spaces.hours', hoursList(p.hours));
		add('spaces.services', Array.isArray(p.services) ? p.services.join(', ') : null);
		add('spaces.contact', p.contact);
		if (f.geometry && f.geometry.coordinates)
			add('spaces.position', `${f.geometry.coordinates[1]}, ${f.geometry.coordinates[0]}`);
		return el('article', { class: 'panel space' + (p.id === self ? ' self' : ''), dataset: { space: p.id } },
			el('h2', {}, p.name, p.id === self ? el('span', { class: 'badge' }, t('spaces.this_space')) : null),
			el('p', { class: 'sub' }, p.city),
			el('dl', { class: 'facts' }, ...facts));
	}

	PS.start({
		async init(session) {
			const r = await fetch('/api/v1/spaces.geojson', { credentials: 'same-origin' });
			if (!r.ok) {
				PS.flash(t('error.generic', { status: r.status }), 'error');
				return;
			}
			const fc = await r.json();
			document.getElementById('spaces').replaceChildren(
				...fc.features.map((f) => card(f, session.space)));
		},
	});
})();
