/*
 * card.js - the member's pass on their phone, opened through the link the
 * manager gave them (/p/SECRET): the QR code to show at any desk, or why it
 * no longer works.
 */
'use strict';

(() => {
	const { t } = PS;
	const $ = (id) => document.getElementById(id);

	PS.start({
		session: false,
		async init() {
			const base = location.pathname.replace(/\/+$/, '');
			let r;
			try {
				r = await fetch(base + '/pass.json', { credentials: 'omit' });
			} catch (e) {
				r = null;
			}
			const data = r ? await r.json().catch(() => null) : null;
			const status = $('card-status');
			if (!r || r.status !== 200 || !data) {
				$('pass-card').dataset.status = 'unknown';
				$('card-name').textContent = t('card.unknown_title');
				status.textContent = t('card.unknown');
				status.hidden = false;
				$('card-help').hidden = true;
				return;
			}
			$('pass-card').dataset.status = data.status;
			$('card-space').textContent = data.home_name || data.home;
			$('card-name').textContent = data.display_name;
			if (data.status === 'valid') {
				const img = $('card-qr');
				img.src = base + '/qr.svg';
				img.alt = t('card.qr_alt', { name: data.display_name });
				img.hidden = false;
				$('card-meta').textContent = t('card.valid_until', {
					date: PS.formatDate(data.expires_at),
					plan: t('plan.' + data.plan),
				});
				if (data.member_status === 'suspended') {
					status.textContent = t('card.suspended');
					status.hidden = false;
				}
			} else {
				status.textContent = t('card.' + data.status);
				status.hidden = false;
				$('card-help').hidden = true;
			}
		},
	});
})();
