/*
 * app.js - what every page of the web page shares: the strings in French
 * and English, the session and its CSRF token, calls to the node's API, the
 * header with its navigation, and a small DOM builder (no HTML is ever
 * built from text, so no name can inject markup).
 *
 * A page script calls PS.start({role, init}) once: the session is read
 * (a page without one goes to the sign-in page), the strings are loaded,
 * the [data-i18n] texts are filled in, then init(session) runs.
 */
'use strict';

const PS = (() => {
	const state = { lang: 'en', strings: {}, session: null };

	function chooseLang() {
		let stored = null;
		try {
			stored = localStorage.getItem('passerelle.lang');
		} catch (e) { /* private browsing: no storage */ }
		if (stored === 'fr' || stored === 'en')
			return stored;
		const wanted = navigator.languages || [navigator.language || 'en'];
		for (const l of wanted) {
			const base = String(l).toLowerCase().slice(0, 2);
			if (base === 'fr' || base === 'en')
				return base;
		}
		return 'en';
	}

	/* A string by key, with {name} placeholders filled from vars. */
	function t(key, vars) {
		let s = state.strings[key];
		if (s === undefined)
			s = key;
		if (vars)
			s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined ? String(vars[k]) : m));
		return s;
	}

	function translate(root) {
		for (const node of (root || document).querySelectorAll('[data-i18n]'))
			node.textContent = t(node.dataset.i18n);
		for (const node of (root || document).querySelectorAll('[data-i18n-placeholder]'))
			node.placeholder = t(node.dataset.i18nPlaceholder);
		for (const node of (root || document).querySelectorAll('[data-i18n-label]'))
			node.setAttribute('aria-label', t(node.dataset.i18nLabel));
		document.documentElement.lang = state.lang;
	}

	async function loadStrings(lang) {
		const r = await fetch(`/static/i18n/${lang}.json`, { credentials: 'same-origin' });
		state.strings = await r.json();
		state.lang = lang;
	}

	/* el('p', {class: 'x', onclick: f}, 'text', child...) */
	function el(tag, attrs, ...children) {
		const node = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (v === null || v === undefined || v === false)
				continue;
			if (k.startsWith('on'))
				node.addEventListener(k.slice(2), v);
			else if (k === 'class')
				node.className = v;
			else if (k === 'text')
				node.textContent = v;
			else if (k === 'dataset')
				Object.assign(node.dataset, v);
			else
				node.setAttribute(k, v === true ? '' : v);
		}
		for (const c of children.flat()) {
			if (c === null || c === undefined || c === false)
				continue;
			node.append(c instanceof Node ? c : document.createTextNode(String(c)));
		}
		return node;
	}

	function signinUrl() {
		return '/signin?next=' + encodeURIComponent(location.pathname + location.search);
	}

	/*
	 * Calls the API; resolves to {status, data} (data: parsed JSON, or
	 * null).  A lost session sends the browser to the sign-in page.
	 */
	async function api(method, path, body) {
		const headers = { Accept: 'application/json' };
		if (body !== undefined)
			headers['Content-Type'] = 'application/json';
		if (method !== 'GET' && state.session && state.session.csrf)
			headers['X-CSRF-Token'] = state.session.csrf;
		let r;
		try {
			r = await fetch(path, {
				method, headers, credentials: 'same-origin',
				body: body !== undefined ? JSON.stringify(body) : undefined,
			});
		} catch (e) {
			return { status: 0, data: { error: 'network', detail: t('error.network') } };
		}
		let data = null;
		try {
			data = await r.json();
		} catch (e) { /* not JSON */ }
		if (r.status === 401 && state.session && path !== '/api/v1/signin') {
			location.assign(signinUrl());
			return new Promise(() => {});
		}
		return { status: r.status, data };
	}

	function errorText(res) {
		if (res && res.data && res.data.detail)
			return res.data.detail;
		return t('error.generic', { status: res ? res.status : '?' });
	}

	const locale = () => (state.lang === 'fr' ? 'fr-FR' : 'en-GB');

	function formatTime(iso, withDate) {
		if (!iso)
			return '';
		const d = new Date(iso);
		return new Intl.DateTimeFormat(locale(), withDate ?
			{ dateStyle: 'medium', timeStyle: 'short' } : { timeStyle: 'short' }).format(d);
	}

	function formatDate(iso) {
		if (!iso)
			return '';
		/* A bare date is a day, not midnight UTC. */
		const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
		const d = m ? new Date(+m[1], +m[2] - 1, +m[3]) : new Date(iso);
		return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium' }).format(d);
	}

	function formatMoney(cents, currency) {
		if (cents === null || cents === undefined)
			return '';
		try {
			return new Intl.NumberFormat(locale(), { style: 'currency', currency: currency || 'EUR' })
				.format(cents / 100);
		} catch (e) {
			return (cents / 100).toFixed(2) + ' ' + (currency || '');
		}
	}

	function setLang(lang) {
		try {
			localStorage.setItem('passerelle.lang', lang);
		} catch (e) { /* no storage: this page only */ }
		location.reload();
	}

	function navLink(href, key) {
		const here = location.pathname === href;
		return el('a', { href, 'aria-current': here ? 'page' : null }, t(key));
	}

	/* The header: the space, the pages this role may open, the language, sign-out. */
	function header(session) {
		const top = document.getElementById('top');
		if (!top)
			return;
		const other = state.lang === 'fr' ? 'en' : 'fr';
		const nav = el('nav', { 'aria-label': t('nav.label') });
		if (session) {
			nav.append(navLink('/desk', 'nav.desk'));
			if (session.role === 'manager' || session.role === 'admin') {
				nav.append(navLink('/manage/members', 'nav.members'),
					navLink('/manage/terms', 'nav.terms'),
					navLink('/manage/visits', 'nav.visits'),
					navLink('/manage/statement', 'nav.statement'),
					navLink('/manage/spaces', 'nav.spaces'));
			}
		}
		const tools = el('div', { class: 'tools' });
		if (session) {
			tools.append(el('span', { class: 'who', id: 'who' },
				`${session.name} · ${t('role.' + session.role)}`));
		}
		tools.append(el('button', {
			type: 'button', class: 'lang', lang: other, id: 'lang-switch',
			'aria-label': t('lang.switch'), onclick: () => setLang(other),
		}, other.toUpperCase()));
		if (session) {
			tools.append(el('button', {
				type: 'button', id: 'signout', onclick: async () => {
					await api('POST', '/api/v1/signout');
					location.assign('/signin');
				},
			}, t('nav.signout')));
		}
		top.replaceChildren(
			el('a', { class: 'skip', href: '#main' }, t('nav.skip')),
			el('div', { class: 'brand' }, el('span', { class: 'logo', 'aria-hidden': 'true' }, '⟷'),
				el('span', {}, session ? session.space_name : 'Passerelle')),
			nav, tools);
	}

	/* A short message in the page's status line (announced to screen readers). */
	function flash(text, kind) {
		const box = document.getElementById('flash');
		if (!box)
			return;
		box.className = 'flash ' + (kind || 'info');
		box.textContent = text;
		box.hidden = !text;
	}

	/*
	 * opts.session: false for public pages (sign-in, the member's pass);
	 * opts.init(session) builds the page.
	 */
	async function start(opts) {
		const lang = chooseLang();
		const strings = loadStrings(lang);
		let session = null;
		if (opts.session !== false) {
			const r = await fetch('/api/v1/session', { credentials: 'same-origin' });
			if (r.status === 401) {
				location.assign(signinUrl());
				return;
			}
			session = await r.json();
			state.session = session;
		}
		await strings;
		translate();
		header(session);
		document.body.classList.add('ready');
		if (opts.init)
			await opts.init(session);
	}

	return {
		t, el, api, start, flash, errorText, translate, formatTime, formatDate, formatMoney,
		get lang() { return state.lang; },
		get session() { return state.session; },
	};
})();
