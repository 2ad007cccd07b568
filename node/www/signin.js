/*
 * signin.js - the sign-in form: name and password to POST /api/v1/signin
 * (JSON); on success the node sets the session cookie and the browser goes
 * where it was sent from, or to the front desk.
 */
'use strict';

(() => {
	const { t, api } = PS;

	/*
	 * Only a page of this site: never an open redirect.  The URL parser
	 * that location.assign uses drops tabs and line feeds and reads "\"
	 * as "/", so "/\t/evil.example" would leave the site: any control
	 * character or space is refused outright, and what remains must parse,
	 * against this origin, to this origin.
	 */
	function nextPage() {
		const next = new URLSearchParams(location.search).get('next') || '';
		if (!next.startsWith('/') || /[\u0000-\u0020\u007f-\u009f\s]/.test(next))
			return '/desk';
		let u;
		try {
			u = new URL(next, location.origin);
		} catch (e) {
			return '/desk';
		}
		return u.origin === location.origin ? u.pathname + u.search + u.hash : '/desk';
	}

	PS.start({
		session: false,
		init() {
			const form = document.getElementById('signin-form');
			form.addEventListener('submit', async (e) => {
				e.preventDefault();
				const button = document.getElementById('signin');
				button.disabled = true;
				PS.flash('');
				const r = await api('POST', '/api/v1/signin', {
					name: form.elements.name.value.trim(),
					password: form.elements.password.value,
				});
				button.disabled = false;
				if (r.status === 200) {
					location.assign(nextPage());
					return;
				}
				form.elements.password.value = '';
				if (r.status === 429) {
					const m = /(\d+) second/.exec((r.data && r.data.detail) || '');
					PS.flash(t('signin.too_many', { seconds: m ? m[1] : '?' }), 'error');
				} else if (r.status === 401) {
					PS.flash(t('signin.wrong'), 'error');
				} else {
					PS.flash(PS.errorText(r), 'error');
				}
				form.elements.password.focus();
			});
		},
	});
})();
