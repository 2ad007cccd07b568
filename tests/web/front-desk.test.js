/*
 * front-desk.test.js - the web page in a real browser, against two real
 * nodes: La Cordée (the member's home) and Le Troquet (the host).
 *
 * The tests run in order and build on each other, as a day does: the
 * manager at La Cordée adds a member and issues a pass; the member opens the
 * pass on a phone, and the QR code on the screen decodes to the exact
 * token; the concierge at Le Troquet types it as a scanner would; the card
 * says admitted; the occupancy goes up, then down at check-out; a revoked
 * pass is refused with its reason; a concierge cannot open the manager's
 * pages; a change without the CSRF token is refused; failed sign-ins are
 * slowed down and logged.  Screenshots go to tests/artifacts/web/.
 */
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const { after, before, test } = require('node:test');

const {
	fx, cliRun, staff, token, launch, newPage, shot, zbar, signIn, jwsClaims, nodeLog,
	assertNoProblems,
} = require('./lib');

const cordee = fx.nodes.cordee;
const troquet = fx.nodes.troquet;
const PASSWORD = 'correct horse battery staple';

const day = {};		/* what one test leaves for the next */
let browser;

before(async () => {
	browser = await launch();
	day.homeManager = staff('cordee', 'Marie Gérant', 'manager', PASSWORD);
	day.hostManager = staff('troquet', 'Hugo Patron', 'manager', PASSWORD);
	day.concierge = staff('troquet', 'Paul Accueil', 'concierge', PASSWORD);
});

after(async () => {
	if (browser)
		await browser.close();
});

async function occupancy(page) {
	return (await page.textContent('#occupancy')).trim();
}

/* Types into the focused field the way a USB scanner does: fast, then Enter. */
async function scan(page, text) {
	await page.keyboard.type(text, { delay: 1 });
	await page.keyboard.press('Enter');
}

test('a manager at the home space signs in, adds a member with ten tickets and issues a pass', async () => {
	const { page } = await newPage(browser, { viewport: { width: 1280, height: 900 } });
	day.homePage = page;

	/* Without a session, a manager's page sends the browser to sign in. */
	await page.goto(cordee.url + '/manage/members');
	await page.waitForURL(cordee.url + '/signin?next=/manage/members');
	await page.waitForSelector('body.ready');
	await page.fill('#name', day.homeManager.name);
	await page.fill('#password', day.homeManager.password);
	await shot(page, 'signin');
	await page.press('#password', 'Enter');
	await page.waitForURL(cordee.url + '/manage/members');
	await page.waitForSelector('body.ready');

	await page.fill('#add-name', 'Camille Durand');
	await page.fill('#add-email', 'camille@example.org');
	await page.selectOption('#add-plan', 'tickets');
	await page.fill('#add-tickets', '10');
	await page.click('#add-submit');
	await page.waitForSelector('#member:not([hidden])');
	assert.equal(await page.textContent('#member-title'), 'Camille Durand');
	assert.match(await page.textContent('#member-facts'), /Camille D\./);
	assert.match(await page.textContent('#member-facts'), /10 tickets/);
	assert.match(await page.textContent('#member-rows'), /Camille Durand/);
	await shot(page, 'members');

	await page.click('#issue-pass');
	await page.waitForURL(/\/manage\/pass\?jti=/);
	day.jti = new URL(page.url()).searchParams.get('jti');
	await page.waitForFunction(() => {
		const img = document.getElementById('pass-qr');
		return !img.hidden && img.complete && img.naturalWidth > 0;
	});
	assert.equal(await page.textContent('#pass-name'), 'Camille D.');
	assert.equal(await page.textContent('#pass-space'), 'La Cordée Lyon');
	day.link = await page.inputValue('#link');
	assert.match(day.link, new RegExp(`^${cordee.url}/p/[A-Za-z0-9_-]{43}$`));
	await shot(page, 'pass');

	/* The card prints on one A6 sheet. */
	await page.emulateMedia({ media: 'print' });
	await shot(page, 'pass-print');
	const pdf = await page.pdf({ preferCSSPageSize: true, printBackground: true });
	await page.emulateMedia({ media: 'screen' });
	const text = pdf.toString('latin1');
	const pages = text.match(/\/Type\s*\/Page[^s]/g) || [];
	assert.equal(pages.length, 1, 'the pass prints on one page');
	const box = /\/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]/.exec(text);
	assert.ok(box, 'the PDF has a page size');
	/* A6: 105 x 148 mm, 297.6 x 419.5 points. */
	assert.ok(Math.abs(parseFloat(box[1]) - 297.6) < 2 && Math.abs(parseFloat(box[2]) - 419.5) < 2,
		`an A6 page, not ${box[1]} x ${box[2]}`);
});

test('the member opens the pass link on a phone, and its QR code decodes to the exact token', async () => {
	const { page } = await newPage(browser, {
		viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true,
		hasTouch: true, locale: 'fr-FR',
	});
	day.phone = page;
	await page.goto(day.link);
	await page.waitForFunction(() => {
		const img = document.getElementById('card-qr');
		return !img.hidden && img.complete && img.naturalWidth > 0;
	});
	/* In French, from the phone's language. */
	assert.match(await page.textContent('#card-meta'), /valable jusqu/);
	assert.equal(await page.textContent('#card-name'), 'Camille D.');
	const res = await page.request.get(day.link + '/pass.json');
	assert.equal(res.status(), 200);
	const pass = await res.json();
	assert.equal(pass.status, 'valid');
	assert.equal(res.headers()['cache-control'], 'no-store');

	const png = await shot(page, 'card-phone');
	const decoded = zbar(png);
	assert.equal(decoded, pass.token, 'the QR code on the screen is the pass');
	const claims = jwsClaims(decoded);
	assert.equal(claims.iss, 'cordee');
	assert.equal(claims.jti, day.jti);
	assert.equal(claims.name, 'Camille D.');
	assert.ok(!decoded.includes('camille@example.org'));
	day.token = decoded;
});

test('the host manager sets the terms with the home space', async () => {
	const { page } = await newPage(browser, { viewport: { width: 1280, height: 900 } });
	day.hostPage = page;
	await signIn(page, 'troquet', day.hostManager, '/manage/terms');
	const form = page.locator('form[data-peer="cordee"]');
	await form.waitFor();
	assert.match(await form.textContent(), /defaults/);
	await page.fill('#rate-cordee', '9.00');
	await page.fill('#cap-cordee', '10');
	await page.fill('#offline-cordee', '1');
	await form.locator('button[type=submit]').click();
	await page.waitForSelector('#flash.ok');
	await page.waitForFunction(() => /Set on/.test(
		document.querySelector('form[data-peer="cordee"]').textContent));
	assert.equal(await page.inputValue('#rate-cordee'), '9.00');
	await shot(page, 'terms');
});

test('a concierge at the host scans the token: the card says admitted, and the occupancy goes up by one', async () => {
	const { page } = await newPage(browser, { viewport: { width: 1024, height: 768 } });
	day.desk = page;
	await signIn(page, 'troquet', day.concierge);
	/* The first refresh writes "present / seats" over the page's placeholder. */
	await page.waitForFunction(() => / \/ /.test(document.getElementById('occupancy').textContent));
	const before = await occupancy(page);
	assert.match(before, /^\d+ \/ 25$/);
	day.present = parseInt(before, 10);

	/* The field has the focus: no click before scanning. */
	assert.equal(await page.evaluate(() => document.activeElement.id), 'scan');
	await scan(page, day.token);
	await page.waitForSelector('#result[data-state="admitted"]');
	assert.equal(await page.textContent('#result-state'), 'Admitted');
	assert.equal(await page.textContent('#result-name'), 'Camille D.');
	assert.equal(await page.textContent('#result-home'), 'La Cordée Lyon');
	assert.equal(await page.textContent('#result-tickets'), '9');
	await page.waitForFunction((n) => document.getElementById('occupancy').textContent === `${n} / 25`,
		day.present + 1);
	assert.match(await page.textContent('#present-rows'), /Camille D\./);
	/* Ready for the next scan at once. */
	assert.equal(await page.inputValue('#scan'), '');
	assert.equal(await page.evaluate(() => document.activeElement.id), 'scan');
	await shot(page, 'desk-admitted');
});

test('the concierge checks the member out with the keyboard alone', async () => {
	const page = day.desk;
	/* From the field, Tab reaches the row's check-out button. */
	let reached = false;
	for (let i = 0; i < 20 && !reached; i++) {
		await page.keyboard.press('Tab');
		reached = await page.evaluate(() => {
			const a = document.activeElement;
			return a.classList.contains('checkout') && /Camille D\./.test(a.closest('tr').textContent);
		});
	}
	assert.ok(reached, 'Tab reaches the check-out button');
	await page.keyboard.press('Enter');
	await page.waitForFunction((n) => document.getElementById('occupancy').textContent === `${n} / 25`,
		day.present);
	assert.match(await page.textContent('#flash'), /Camille D\. checked out/);
	assert.doesNotMatch(await page.textContent('#present-rows'), /Camille D\./);
	assert.equal(await page.evaluate(() => document.activeElement.id), 'scan');
});

test('revoke and re-issue is one click; the revoked pass is refused at the desk with its reason', async () => {
	const home = day.homePage;
	await home.click('#reissue');
	await home.waitForURL(/reissued=1/);
	const newJti = new URL(home.url()).searchParams.get('jti');
	assert.notEqual(newJti, day.jti);
	await home.waitForFunction(() => document.getElementById('link').value !== '');
	const newLink = await home.inputValue('#link');
	assert.notEqual(newLink, day.link);

	const desk = day.desk;
	await scan(desk, day.token);
	await desk.waitForSelector('#result[data-state="refused"]');
	assert.equal(await desk.textContent('#result-state'), 'Refused');
	assert.match(await desk.textContent('#result-reason'), /revoked/);
	await shot(desk, 'desk-refused');

	/* The old link says so too; the new one works at the desk. */
	await day.phone.reload();
	await day.phone.waitForFunction(() => document.getElementById('pass-card').dataset.status);
	assert.equal(await day.phone.getAttribute('#pass-card', 'data-status'), 'revoked');
	assert.match(await day.phone.textContent('#card-status'), /révoqué/);
	const fresh = await (await day.phone.request.get(newLink + '/pass.json')).json();
	assert.equal(fresh.status, 'valid');
	day.freshToken = fresh.token;
	await scan(desk, fresh.token);
	await desk.waitForSelector('#result[data-state="admitted"]');
	assert.equal(await desk.textContent('#result-tickets'), '8');
	await desk.click('#present-rows tr:has-text("Camille D.") button.checkout');
	await desk.waitForFunction((n) => document.getElementById('occupancy').textContent === `${n} / 25`,
		day.present);
});

test('while the home space cannot be reached, the card says admitted provisionally', async () => {
	const desk = day.desk;
	/* La Cordée's node freezes; the terms allow one visit meanwhile. */
	process.kill(cordee.pid, 'SIGSTOP');
	try {
		await scan(desk, day.freshToken);
		await desk.waitForSelector('#result[data-state="provisional"]', { timeout: 30000 });
		assert.equal(await desk.textContent('#result-state'), 'Admitted provisionally');
		assert.equal(await desk.textContent('#result-name'), 'Camille D.');
		assert.match(await desk.textContent('#result-reason'), /cannot be reached/);
		await desk.waitForFunction((n) => document.getElementById('occupancy').textContent ===
			`${n} / 25`, day.present + 1);
		await shot(desk, 'desk-provisional');
		await desk.click('#present-rows tr:has-text("Camille D.") button.checkout');
		await desk.waitForFunction((n) => document.getElementById('occupancy').textContent ===
			`${n} / 25`, day.present);
	} finally {
		process.kill(cordee.pid, 'SIGCONT');
	}
});

test('the desk speaks French, with a switch back to English', async () => {
	const page = day.desk;
	await page.click('#lang-switch');
	await page.waitForFunction(() => document.documentElement.lang === 'fr' &&
		document.body.classList.contains('ready'));
	assert.equal(await page.textContent('#present-title'), 'Présents');
	assert.equal(await page.textContent('#result-state'), 'En attente d\'un pass');
	await shot(page, 'desk-fr');
	await page.click('#lang-switch');
	await page.waitForFunction(() => document.documentElement.lang === 'en' &&
		document.body.classList.contains('ready'));
	assert.equal(await page.textContent('#present-title'), 'Present now');
});

test('a concierge cannot open the manager\'s pages', async () => {
	const page = day.desk;
	for (const p of ['/manage/members', '/manage/terms', '/manage/statement', '/manage/pass?jti=x']) {
		const res = await page.goto(troquet.url + p);
		assert.equal(res.status(), 403, p);
		await page.waitForSelector('body.ready');
		assert.match(await page.textContent('#forbidden h1'), /for managers/);
	}
	assert.equal(await page.locator('nav a[href="/manage/members"]').count(), 0);
	const api = await page.request.get(troquet.url + '/api/v1/members');
	assert.equal(api.status(), 403);
	assert.equal((await api.json()).error, 'forbidden');
	await shot(page, 'forbidden');
	await page.goto(troquet.url + '/desk');
	await page.waitForSelector('body.ready');
});

test('a change made with the session cookie but without the CSRF token is refused', async () => {
	const page = day.desk;
	const url = troquet.url + '/api/v1/checkin';
	/* The browser context sends the session cookie with these requests. */
	let res = await page.request.post(url, { data: { pass: day.token } });
	assert.equal(res.status(), 403);
	assert.equal((await res.json()).error, 'csrf');
	res = await page.request.post(url, { data: { pass: day.token },
		headers: { 'X-CSRF-Token': 'not-the-token' } });
	assert.equal(res.status(), 403);
	/* With the session's token, the same request goes through. */
	const session = await (await page.request.get(troquet.url + '/api/v1/session')).json();
	assert.equal(session.role, 'concierge');
	res = await page.request.post(url, { data: { pass: day.token },
		headers: { 'X-CSRF-Token': session.csrf } });
	assert.equal(res.status(), 200);
	assert.equal((await res.json()).reason_code, 'revoked');
	/* Scripts with a bearer token need no CSRF token, and no cookie. */
	const bearer = token('troquet', 'desk script', 'concierge');
	const other = await browser.newContext();
	res = await other.request.get(troquet.url + '/api/v1/visits',
		{ headers: { Authorization: 'Bearer ' + bearer } });
	assert.equal(res.status(), 200);
	res = await other.request.post(troquet.url + '/api/v1/signout');
	assert.equal(res.status(), 401);
	/* Sign-in only takes JSON: no form from another site can sign anyone in. */
	res = await other.request.post(troquet.url + '/api/v1/signin',
		{ form: { name: day.concierge.name, password: day.concierge.password } });
	assert.equal(res.status(), 415);
	await other.close();
});

test('the session cookie is HttpOnly and SameSite=Strict; pages carry a strict CSP', async () => {
	const page = day.desk;
	const cookies = await page.context().cookies(troquet.url);
	const session = cookies.find((c) => c.name === 'passerelle_troquet');
	assert.ok(session, 'a session cookie named after the space');
	assert.equal(session.httpOnly, true);
	assert.equal(session.sameSite, 'Strict');
	assert.ok(session.expires > Date.now() / 1000, 'it expires');
	const res = await page.request.get(troquet.url + '/desk');
	const csp = res.headers()['content-security-policy'];
	assert.match(csp, /default-src 'none'/);
	assert.match(csp, /script-src 'self'(;|$)/);
	assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
	assert.match(csp, /frame-ancestors 'none'/);
	const js = await page.request.get(troquet.url + '/static/desk.js');
	assert.equal(js.status(), 200);
	assert.ok(js.headers().etag);
	const again = await page.request.get(troquet.url + '/static/desk.js',
		{ headers: { 'If-None-Match': js.headers().etag } });
	assert.equal(again.status(), 304);
	/* No inline script or style in any page: all of it comes from files. */
	for (const p of ['/signin', '/desk']) {
		const html = await (await page.request.get(troquet.url + p)).text();
		assert.doesNotMatch(html, /<script>|<script(?![^>]*\bsrc=)[^>]*>|<style|style=|\son[a-z]+=/i, p);
	}
});

test('repeated failed sign-ins are slowed down and logged', async () => {
	const account = staff('troquet', 'Zoé Essai', 'concierge', PASSWORD);
	const { context, page } = await newPage(browser, { viewport: { width: 800, height: 700 } });
	await page.goto(troquet.url + '/signin');
	await page.waitForSelector('body.ready');
	for (let i = 0; i < 4; i++) {
		await page.fill('#name', account.name);
		await page.fill('#password', 'wrong password ' + i);
		await page.press('#password', 'Enter');
		await page.waitForSelector('#flash:not([hidden])');
		assert.equal(await page.textContent('#flash'), 'Wrong account or password.');
		await page.evaluate(() => { document.getElementById('flash').hidden = true; });
	}
	/* Now even the right password waits. */
	await page.fill('#name', account.name);
	await page.fill('#password', account.password);
	await page.press('#password', 'Enter');
	await page.waitForSelector('#flash:not([hidden])');
	assert.match(await page.textContent('#flash'), /Too many failed attempts: try again in \d+ seconds/);
	const res = await context.request.post(troquet.url + '/api/v1/signin',
		{ data: { name: account.name, password: account.password } });
	assert.equal(res.status(), 429);
	const wait = parseInt(res.headers()['retry-after'], 10);
	assert.ok(wait >= 1 && wait <= 4, `Retry-After ${wait}`);
	assert.match(nodeLog('troquet'), /failed sign-in as 'Zoé Essai' from 127\.0\.0\.1 \(4 in a row/);
	await new Promise((r) => setTimeout(r, (wait + 0.5) * 1000));
	await page.fill('#password', account.password);
	await page.press('#password', 'Enter');
	await page.waitForURL(troquet.url + '/desk');
	await context.close();
});

test('the host manager sees the month\'s visits, the statement with its CSV, and the spaces', async () => {
	const page = day.hostPage;
	await page.goto(troquet.url + '/manage/visits');
	await page.waitForSelector('body.ready');
	await page.waitForFunction(() => document.querySelectorAll('#visit-rows tr').length >= 4);
	const rows = await page.textContent('#visit-rows');
	assert.match(rows, /La Cordée Lyon/);
	assert.match(rows, /Refused · This pass has been revoked/);
	await shot(page, 'visits');

	await page.goto(troquet.url + '/manage/statement');
	await page.waitForSelector('body.ready');
	const row = page.locator('#statement-rows tr[data-peer="cordee"]');
	await row.waitFor();
	/* Three half-days at 9.00 (one provisional): La Cordée owes 27.00. */
	assert.match(await row.textContent(), /3 visits, 3 half-days/);
	assert.match(await row.textContent(), /they owe us €27\.00/);
	const href = await page.getAttribute('#csv', 'href');
	const csv = await page.request.get(troquet.url + href);
	assert.equal(csv.status(), 200);
	assert.match(csv.headers()['content-type'], /^text\/csv/);
	assert.match(csv.headers()['content-disposition'], /attachment; filename="passerelle-troquet-\d{4}-\d{2}-statement.csv"/);
	const lines = (await csv.text()).trim().split('\r\n');
	assert.match(lines[0], /^month,space,peer,currency,/);
	assert.match(lines[1], /,troquet,cordee,EUR,3,3,2700,0,0,0,2700$/);

	/* Once `passerelle reconcile` has run (reconcile.c), its statement shows. */
	const month = lines[1].split(',')[0];
	const rec = cliRun('troquet', 'reconcile', '--peer', 'cordee', '--month', month);
	await page.reload();
	await page.waitForSelector('body.ready');
	await page.waitForFunction(() => document.querySelectorAll('#reconciled-rows tr').length > 0 ||
		!document.getElementById('reconciled-none').hidden);
	assert.match(await page.textContent('#reconciled-rows'), /La Cordée Lyon/,
		`passerelle reconcile exited ${rec.status}: ${rec.stderr}`);
	/* The reconciled statement downloads line by line, as reconcile --csv. */
	const linesHref = await page.getAttribute('#reconciled-rows a[download]', 'href');
	const rcsv = await page.request.get(troquet.url + linesHref);
	assert.equal(rcsv.status(), 200);
	assert.match(rcsv.headers()['content-disposition'], /reconciled\.csv"/);
	const rlines = (await rcsv.text()).trim().split(/\r?\n/);
	assert.ok(rlines.length >= 4, rlines.join('\n'));
	assert.match(rlines[0], /visit_id/);
	await shot(page, 'statement');

	await page.goto(troquet.url + '/manage/spaces');
	await page.waitForSelector('article[data-space="cordee"]');
	assert.match(await page.textContent('article[data-space="troquet"]'), /25 seats/);
	assert.match(await page.textContent('article[data-space="cordee"]'), /Sainte-Catherine/);
	const geo = await page.request.get(troquet.url + await page.getAttribute('#geojson', 'href'));
	assert.equal((await geo.json()).type, 'FeatureCollection');
	await shot(page, 'spaces', { fullPage: true });

	/* The home sees its member's visits there. */
	const home = day.homePage;
	await home.goto(cordee.url + '/manage/visits?side=home');
	await home.waitForFunction(() => /Camille Durand/.test(document.getElementById('visit-rows').textContent));
	assert.match(await home.textContent('#visit-rows'), /Le Troquet numérique/);
});

test('staff passwd reads the password from standard input, and refuses a short one', async () => {
	const { execFileSync, spawnSync } = require('node:child_process');
	cliRun('troquet', 'staff', 'add', 'Léa Stdin', '--role', 'concierge');
	const conf = fx.nodes.troquet.conf;
	const short = spawnSync(fx.bin, ['-c', conf, 'staff', 'passwd', 'Léa Stdin'],
		{ input: 'short\n', encoding: 'utf8' });
	assert.equal(short.status, 1);
	assert.match(short.stderr, /10 to 1024 bytes/);
	const nobody = spawnSync(fx.bin, ['-c', conf, 'staff', 'passwd', 'Nobody Here'],
		{ input: PASSWORD + '\n', encoding: 'utf8' });
	assert.equal(nobody.status, 1);
	assert.match(nobody.stderr, /no staff account named 'Nobody Here'/);
	execFileSync(fx.bin, ['-c', conf, 'staff', 'passwd', 'Léa Stdin'],
		{ input: PASSWORD + '\n', encoding: 'utf8' });
	const other = await browser.newContext();
	const res = await other.request.post(troquet.url + '/api/v1/signin',
		{ data: { name: 'Léa Stdin', password: PASSWORD } });
	assert.equal(res.status(), 200);
	assert.equal((await res.json()).role, 'concierge');
	await other.close();
});

test('signing out ends the session', async () => {
	const page = day.desk;
	await page.goto(troquet.url + '/desk');
	await page.waitForSelector('body.ready');
	await page.click('#signout');
	await page.waitForURL(troquet.url + '/signin');
	const res = await page.request.get(troquet.url + '/api/v1/session');
	assert.equal(res.status(), 401);
	await page.goto(troquet.url + '/desk');
	await page.waitForURL(troquet.url + '/signin?next=/desk');
});

test('no page loaded anything from elsewhere, broke its CSP or threw', async () => {
	assertNoProblems();
	assert.ok(fs.existsSync(`${fx.artifacts}/desk-admitted.png`));
});
