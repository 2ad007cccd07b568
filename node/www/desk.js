/*
 * desk.js - the front desk: one field that keeps the focus (a USB scanner
 * types the pass, then Enter), the camera where the browser can read QR
 * codes (BarcodeDetector), the result card, who is present with a
 * check-out button each, and the occupancy against the seats, kept
 * current by polling.
 */
'use strict';

(() => {
	const { t, el, api } = PS;
	const REFRESH_MS = 4000;
	let spaces = {};		/* space id -> name, from the directory */
	let busy = false;
	let stream = null;

	const $ = (id) => document.getElementById(id);

	function spaceName(id) {
		return spaces[id] || id || '';
	}

	async function loadSpaces() {
		const r = await fetch('/api/v1/spaces.geojson', { credentials: 'same-origin' });
		if (!r.ok)
			return;
		const fc = await r.json();
		for (const f of fc.features || [])
			spaces[f.properties.id] = f.properties.name;
	}

	/* The field takes the focus back unless another control has it. */
	function refocus() {
		const a = document.activeElement;
		if (!a || a === document.body || a === $('main') || a.id === 'result')
			$('scan').focus();
	}

	function planText(d) {
		return d.plan ? t('plan.' + d.plan) : '';
	}

	/*
	 * The node's own sentence is written for the concierge (and may say
	 * more: the opening hours, the seats); in French, the translation of
	 * its code, or the sentence when the code is new.
	 */
	function reasonText(d) {
		const key = 'reason.' + d.reason_code;
		const s = t(key);
		if (PS.lang === 'en' && d.reason)
			return d.reason;
		return s !== key ? s : (d.reason || '');
	}

	/* The big card: admitted, admitted provisionally, or refused. */
	function showDecision(d) {
		const provisional = d.decision === 'admit' && d.reason_code === 'provisional';
		const state = d.decision === 'admit' ? (provisional ? 'provisional' : 'admitted') : 'refused';
		const card = $('result');
		card.className = 'result state-' + state;
		card.dataset.state = state;
		$('result-state').textContent = t('decision.' + state);
		$('result-name').textContent = d.display_name || '';
		const facts = [];
		if (d.home)
			facts.push([t('col.home'), spaceName(d.home), 'result-home']);
		if (d.plan)
			facts.push([t('col.plan'), planText(d), 'result-plan']);
		if (d.tickets_left !== undefined && d.tickets_left !== null)
			facts.push([t('col.tickets'), String(d.tickets_left), 'result-tickets']);
		$('result-facts').replaceChildren(...facts.flatMap(([k, v, id]) =>
			[el('dt', {}, k), el('dd', { id }, v)]));
		let reason = '';
		if (state === 'refused')
			reason = reasonText(d);
		else if (provisional)
			reason = reasonText(d);
		$('result-reason').textContent = reason;
	}

	function showError(text) {
		const card = $('result');
		card.className = 'result state-error';
		card.dataset.state = 'error';
		$('result-state').textContent = t('decision.error');
		$('result-name').textContent = '';
		$('result-facts').replaceChildren();
		$('result-reason').textContent = text;
	}

	async function checkIn(token) {
		token = token.trim();
		if (!token || busy)
			return;
		busy = true;
		PS.flash('');
		$('result').classList.add('pending');
		const r = await api('POST', '/api/v1/checkin', { pass: token });
		$('result').classList.remove('pending');
		busy = false;
		if (r.status === 200 && r.data)
			showDecision(r.data);
		else
			showError(PS.errorText(r));
		await refresh();
	}

	async function checkOut(visit) {
		const r = await api('POST', `/api/v1/visits/${visit.visit_id}/checkout`);
		if (r.status === 200) {
			PS.flash(t('desk.checked_out', {
				name: visit.display_name || visit.member,
				units: r.data.units,
			}), 'ok');
		} else {
			PS.flash(PS.errorText(r), 'error');
		}
		await refresh();
		$('scan').focus();
	}

	function row(v) {
		return el('tr', { dataset: { visit: v.visit_id } },
			el('td', { class: 'name' }, v.display_name || v.member),
			el('td', {}, spaceName(v.home)),
			el('td', {}, PS.formatTime(v.checked_in_at)),
			el('td', { class: 'num' }, v.tickets_left !== undefined ? String(v.tickets_left) : '–'),
			el('td', { class: 'actions' }, el('button', {
				type: 'button', class: 'checkout',
				'aria-label': t('desk.checkout_who', { name: v.display_name || v.member }),
				onclick: () => checkOut(v),
			}, t('desk.checkout'))));
	}

	async function refresh() {
		const r = await api('GET', '/api/v1/visits');
		if (r.status !== 200 || !r.data)
			return;
		const { present, capacity, visits } = r.data;
		const occ = $('occupancy');
		occ.textContent = capacity !== null && capacity !== undefined ?
			`${present} / ${capacity}` : String(present);
		occ.parentElement.classList.toggle('full', capacity !== null && capacity !== undefined &&
			present >= capacity);
		/* Keep the focused button's row focused across the refresh. */
		const focused = document.activeElement && document.activeElement.closest &&
			document.activeElement.closest('tr[data-visit]');
		const keep = focused ? focused.dataset.visit : null;
		$('present-rows').replaceChildren(...visits.map(row));
		$('present-empty').hidden = visits.length > 0;
		if (keep) {
			const again = document.querySelector(`tr[data-visit="${keep}"] button`);
			if (again)
				again.focus();
		}
	}

	/* ---------------------------------------------------------- camera */

	async function startCamera() {
		if (!('BarcodeDetector' in window) || !navigator.mediaDevices)
			return;
		let detector;
		try {
			detector = new BarcodeDetector({ formats: ['qr_code'] });
			stream = await navigator.mediaDevices.getUserMedia({
				video: { facingMode: 'environment' }, audio: false,
			});
		} catch (e) {
			PS.flash(t('desk.camera_error'), 'error');
			return;
		}
		const video = $('video');
		video.srcObject = stream;
		$('camera-box').hidden = false;
		await video.play();
		const tick = async () => {
			if (!stream)
				return;
			try {
				const codes = await detector.detect(video);
				if (codes.length > 0 && codes[0].rawValue) {
					stopCamera();
					await checkIn(codes[0].rawValue);
					return;
				}
			} catch (e) { /* a frame not ready yet */ }
			setTimeout(tick, 200);
		};
		tick();
	}

	function stopCamera() {
		if (stream)
			for (const track of stream.getTracks())
				track.stop();
		stream = null;
		$('video').srcObject = null;
		$('camera-box').hidden = true;
		$('scan').focus();
	}

	/* ---------------------------------------------------------- start */

	PS.start({
		async init() {
			const scan = $('scan');
			$('scan-form').addEventListener('submit', (e) => {
				e.preventDefault();
				const token = scan.value;
				scan.value = '';
				checkIn(token);
				scan.focus();
			});
			/* A click on nothing in particular gives the field its focus back. */
			scan.addEventListener('blur', () => setTimeout(refocus, 150));
			/*
			 * A scanner types wherever the focus is: a printable key
			 * while no text field has it goes to the field.
			 */
			document.addEventListener('keydown', (e) => {
				const a = document.activeElement;
				const typing = a && (a.tagName === 'INPUT' || a.tagName === 'TEXTAREA' ||
					a.tagName === 'SELECT');
				if (!typing && e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey &&
					e.key !== ' ')
					scan.focus();
			});
			if ('BarcodeDetector' in window && navigator.mediaDevices) {
				$('camera').hidden = false;
				$('camera').addEventListener('click', startCamera);
				$('camera-stop').addEventListener('click', stopCamera);
			}
			await loadSpaces();
			await refresh();
			setInterval(() => {
				if (!document.hidden)
					refresh();
			}, REFRESH_MS);
			document.addEventListener('visibilitychange', () => {
				if (!document.hidden)
					refresh();
			});
			scan.focus();
		},
	});
})();
