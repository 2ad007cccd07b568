/*
 * pass.js - one pass, for the manager: its QR code on a card that prints on
 * one A6 sheet, the member's link (shown once after it is made; a new one
 * replaces it), revoke, and revoke-and-re-issue in one click.
 */
'use strict';

(() => {
	const { t, api } = PS;
	const $ = (id) => document.getElementById(id);
	const jti = new URLSearchParams(location.search).get('jti') || '';
	let pass = null;

	function showLink(path) {
		if (!path) {
			$('link-box').hidden = true;
			return;
		}
		$('link').value = location.origin + path;
		$('link-box').hidden = false;
	}

	function render(p) {
		pass = p;
		const card = $('pass-card');
		card.dataset.status = p.status;
		$('pass-space').textContent = p.home_name;
		$('pass-name').textContent = p.display_name;
		$('back').href = '/manage/members?m=' + encodeURIComponent(p.member);
		$('pass-meta').textContent = t('card.valid_until', {
			date: PS.formatDate(p.expires_at), plan: t('plan.' + p.plan),
		});
		$('pass-jti').textContent = p.jti;
		const qr = $('pass-qr');
		const status = $('pass-status');
		if (p.status === 'valid' && p.kept) {
			qr.src = `/api/v1/passes/${encodeURIComponent(p.jti)}/qr.svg`;
			qr.alt = t('card.qr_alt', { name: p.display_name });
			qr.hidden = false;
			status.hidden = true;
		} else {
			qr.hidden = true;
			status.textContent = p.status !== 'valid' ? t('card.' + p.status) : t('pass.not_kept');
			status.hidden = false;
		}
		let stored = null;
		try {
			stored = sessionStorage.getItem('passerelle.link.' + p.jti);
		} catch (e) { /* no storage */ }
		showLink(p.link_active && stored ? stored : null);
		$('link-state').textContent = p.link_active ? (stored ? '' : t('pass.link_hidden')) :
			t('pass.no_link');
		const usable = p.status === 'valid';
		$('new-link').disabled = !usable || !p.kept;
		$('print').disabled = !usable || !p.kept;
		$('revoke').disabled = !usable;
		$('reissue').disabled = p.member_status !== 'active';
	}

	async function load() {
		const r = await api('GET', `/api/v1/passes/${encodeURIComponent(jti)}`);
		if (r.status !== 200) {
			PS.flash(PS.errorText(r), 'error');
			return;
		}
		render(r.data);
	}

	function remember(j, link) {
		try {
			sessionStorage.setItem('passerelle.link.' + j, link || '');
		} catch (e) { /* no storage */ }
	}

	PS.start({
		async init() {
			$('print').addEventListener('click', () => window.print());
			$('copy-link').addEventListener('click', async () => {
				$('link').select();
				try {
					await navigator.clipboard.writeText($('link').value);
					PS.flash(t('pass.copied'), 'ok');
				} catch (e) {
					document.execCommand('copy');
				}
			});
			$('new-link').addEventListener('click', async () => {
				const r = await api('POST', `/api/v1/passes/${encodeURIComponent(jti)}/link`);
				if (r.status !== 201) {
					PS.flash(PS.errorText(r), 'error');
					return;
				}
				remember(jti, r.data.link);
				PS.flash(t('pass.link_made'), 'ok');
				await load();
			});
			$('revoke').addEventListener('click', async () => {
				if (!confirm(t('pass.confirm_revoke', { name: pass.display_name })))
					return;
				const r = await api('POST', `/api/v1/passes/${encodeURIComponent(jti)}/revoke`);
				PS.flash(r.status === 200 ? t('pass.revoked_done') : PS.errorText(r),
					r.status === 200 ? 'ok' : 'error');
				await load();
			});
			$('reissue').addEventListener('click', async () => {
				const r = await api('POST', `/api/v1/passes/${encodeURIComponent(jti)}/reissue`);
				if (r.status !== 201) {
					PS.flash(PS.errorText(r), 'error');
					return;
				}
				remember(r.data.jti, r.data.link);
				location.assign('/manage/pass?jti=' + encodeURIComponent(r.data.jti) + '&reissued=1');
			});
			if (new URLSearchParams(location.search).get('reissued'))
				PS.flash(t('pass.reissued'), 'ok');
			await load();
		},
	});
})();
