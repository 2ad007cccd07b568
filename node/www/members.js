/*
 * members.js - the manager's members: search, add, open one (?m=PSEUDONYM)
 * to top up, change the plan, suspend or resume, issue or revoke passes.
 */
'use strict';

(() => {
	const { t, el, api } = PS;
	const $ = (id) => document.getElementById(id);
	let members = [];
	let current = null;

	function planSummary(m) {
		if (m.plan === 'tickets')
			return t('members.tickets_left', { n: m.tickets });
		return t('members.monthly_until', { date: m.valid_until ? PS.formatDate(m.valid_until) : '?' });
	}

	function matches(m, q) {
		if (!q)
			return true;
		const hay = [m.full_name, m.display_name, m.email, m.pseudonym].join(' ').toLowerCase();
		return q.toLowerCase().split(/\s+/).every((w) => hay.includes(w));
	}

	function renderList() {
		const q = $('search').value.trim();
		const shown = members.filter((m) => matches(m, q));
		$('member-rows').replaceChildren(...shown.map((m) => el('tr',
			{ class: current && current.pseudonym === m.pseudonym ? 'selected' : null },
			el('td', {}, el('a', {
				href: '?m=' + encodeURIComponent(m.pseudonym),
				onclick: (e) => { e.preventDefault(); open(m.pseudonym, true); },
			}, m.full_name), el('span', { class: 'sub' }, m.email || m.display_name)),
			el('td', {}, planSummary(m)),
			el('td', {}, el('span', { class: 'badge ' + m.status }, t('status.' + m.status))))));
		$('members-empty').hidden = shown.length > 0;
	}

	async function loadList() {
		const r = await api('GET', '/api/v1/members');
		if (r.status === 200)
			members = r.data;
		else
			PS.flash(PS.errorText(r), 'error');
		renderList();
	}

	function fact(k, v) {
		return [el('dt', {}, k), el('dd', {}, v)];
	}

	function renderMember(m) {
		current = m;
		$('member').hidden = false;
		$('member-title').textContent = m.full_name;
		$('member-facts').replaceChildren(
			...fact(t('members.display_name_short'), m.display_name),
			...fact(t('members.email'), m.email || '–'),
			...fact(t('col.plan'), `${t('plan.' + m.plan)} · ${planSummary(m)}` +
				(m.roam_cap !== undefined ? ` · ${t('members.cap_short', { n: m.roam_cap })}` : '')),
			...fact(t('col.status'), t('status.' + m.status)),
			...fact(t('members.pseudonym'), m.pseudonym));
		$('toggle-status').textContent = m.status === 'active' ? t('members.suspend') : t('members.resume');
		$('toggle-status').className = m.status === 'active' ? 'danger' : '';
		$('issue-pass').disabled = m.status !== 'active';
		$('topup-form').hidden = m.plan !== 'tickets';
		$('plan').value = m.plan;
		$('plan-from').value = m.valid_from || '';
		$('plan-until').value = m.valid_until || '';
		$('plan-cap').value = m.roam_cap !== undefined ? m.roam_cap : '';
		renderList();
	}

	async function loadPasses(m) {
		const r = await api('GET', `/api/v1/members/${encodeURIComponent(m.pseudonym)}/passes`);
		const rows = r.status === 200 ? r.data : [];
		$('pass-rows').replaceChildren(...rows.map((p) => el('tr', {},
			el('td', {}, el('a', { href: '/manage/pass?jti=' + encodeURIComponent(p.jti) }, p.jti)),
			el('td', {}, PS.formatDate(p.issued_at)),
			el('td', {}, PS.formatDate(p.expires_at)),
			el('td', {}, el('span', { class: 'badge ' + p.status }, t('pass.' + p.status))))));
		if (rows.length === 0)
			$('pass-rows').append(el('tr', {}, el('td', { colspan: '4', class: 'empty' }, t('members.no_pass'))));
	}

	async function open(ref, push) {
		const r = await api('GET', '/api/v1/members/' + encodeURIComponent(ref));
		if (r.status !== 200) {
			PS.flash(PS.errorText(r), 'error');
			return;
		}
		if (push)
			history.pushState(null, '', '?m=' + encodeURIComponent(r.data.pseudonym));
		renderMember(r.data);
		await loadPasses(r.data);
		$('member-title').setAttribute('tabindex', '-1');
		$('member-title').focus();
	}

	async function changed(r, message) {
		if (r.status === 200 || r.status === 201) {
			PS.flash(message, 'ok');
			await loadList();
			renderMember(r.data);
			await loadPasses(r.data);
		} else {
			PS.flash(PS.errorText(r), 'error');
		}
	}

	const ref = () => encodeURIComponent(current.pseudonym);

	function wire() {
		$('search').addEventListener('input', renderList);
		$('add-form').addEventListener('submit', async (e) => {
			e.preventDefault();
			const f = e.target.elements;
			const body = { full_name: f.full_name.value.trim(), plan: f.plan.value };
			if (f.email.value.trim())
				body.email = f.email.value.trim();
			if (f.display_name.value.trim())
				body.display_name = f.display_name.value.trim();
			if (body.plan === 'tickets')
				body.tickets = parseInt(f.tickets.value || '0', 10);
			else
				body.valid_until = f.valid_until.value;
			const r = await api('POST', '/api/v1/members', body);
			if (r.status === 201) {
				e.target.reset();
				PS.flash(t('members.added', { name: r.data.full_name }), 'ok');
				await loadList();
				await open(r.data.pseudonym, true);
			} else {
				PS.flash(PS.errorText(r), 'error');
			}
		});
		$('topup-form').addEventListener('submit', async (e) => {
			e.preventDefault();
			const n = parseInt(e.target.elements.tickets.value, 10);
			const r = await api('POST', `/api/v1/members/${ref()}/topup`, { tickets: n });
			await changed(r, t('members.topped_up', { n }));
		});
		$('plan-form').addEventListener('submit', async (e) => {
			e.preventDefault();
			const f = e.target.elements;
			const body = { plan: f.plan.value };
			if (f.valid_from.value)
				body.valid_from = f.valid_from.value;
			if (f.valid_until.value)
				body.valid_until = f.valid_until.value;
			/* A ticket book has no cap: the node refuses one rather than drop it. */
			if (f.plan.value === 'monthly')
				body.roam_cap = f.roam_cap.value === '' ? null : parseInt(f.roam_cap.value, 10);
			const r = await api('POST', `/api/v1/members/${ref()}/plan`, body);
			await changed(r, t('members.plan_changed'));
		});
		$('toggle-status').addEventListener('click', async () => {
			const status = current.status === 'active' ? 'suspended' : 'active';
			if (status === 'suspended' && !confirm(t('members.confirm_suspend', { name: current.full_name })))
				return;
			const r = await api('POST', `/api/v1/members/${ref()}/status`, { status });
			await changed(r, t('status.' + status));
		});
		$('revoke-all').addEventListener('click', async () => {
			if (!confirm(t('members.confirm_revoke', { name: current.full_name })))
				return;
			const r = await api('POST', `/api/v1/members/${ref()}/revoke`);
			if (r.status === 200) {
				PS.flash(t('members.revoked', { n: r.data.revoked }), 'ok');
				await loadPasses(current);
			} else {
				PS.flash(PS.errorText(r), 'error');
			}
		});
		$('issue-pass').addEventListener('click', async () => {
			const r = await api('POST', `/api/v1/members/${ref()}/passes`);
			if (r.status !== 201) {
				PS.flash(PS.errorText(r), 'error');
				return;
			}
			/* The member's link is shown once, on the pass's page. */
			try {
				sessionStorage.setItem('passerelle.link.' + r.data.jti, r.data.link || '');
			} catch (e) { /* no storage: the page offers a new link */ }
			location.assign('/manage/pass?jti=' + encodeURIComponent(r.data.jti));
		});
		window.addEventListener('popstate', () => {
			const m = new URLSearchParams(location.search).get('m');
			if (m)
				open(m, false);
			else
				$('member').hidden = true;
		});
	}

	PS.start({
		async init() {
			wire();
			await loadList();
			const m = new URLSearchParams(location.search).get('m');
			if (m)
				await open(m, false);
			else
				$('search').focus();
		},
	});
})();
