/*
 * lib.js - what the browser tests share: the federation that run.py started
 * (its fixture file), the `passerelle` command line, Debian's Chromium
 * through playwright-core, screenshots, zbarimg, and a watch on every page
 * for what must never happen (a request that leaves the node, a Content
 * Security Policy violation, a script error).
 */
'use strict';

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const fixturePath = process.env.PASSERELLE_WEB_FIXTURE;
if (!fixturePath)
	throw new Error('PASSERELLE_WEB_FIXTURE is not set: run tests/web/run.py');
const fx = JSON.parse(fs.readFileSync(fixturePath, 'utf8'));

/* The flags a root session in this sandbox needs (no network to reach). */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
	'--no-first-run', '--disable-background-networking', '--disable-component-update',
	'--disable-sync'];

/* `passerelle -c CONF ARGS...` for a space; its standard output. */
function cli(space, ...args) {
	return execFileSync(fx.bin, ['-c', fx.nodes[space].conf, ...args],
		{ encoding: 'utf8', timeout: 30000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/* The same, whatever its exit status: {status, stdout, stderr}. */
function cliRun(space, ...args) {
	const { spawnSync } = require('node:child_process');
	const r = spawnSync(fx.bin, ['-c', fx.nodes[space].conf, ...args],
		{ encoding: 'utf8', timeout: 60000 });
	return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/* A staff account with a password (`staff add`, then `staff passwd`). */
function staff(space, name, role, password) {
	cli(space, 'staff', 'add', name, '--role', role);
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passerelle-web-pw-'));
	const file = path.join(dir, 'password');
	fs.writeFileSync(file, password + '\n', { mode: 0o600 });
	try {
		cli(space, 'staff', 'passwd', name, '--password-file', file);
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
	return { name, password };
}

/* A bearer token for scripts (`staff add` prints it). */
function token(space, name, role) {
	return cli(space, 'staff', 'add', name, '--role', role).trim();
}

async function launch() {
	return chromium.launch({ executablePath: fx.chromium, headless: true, args: CHROMIUM_ARGS });
}

const problems = [];

/* Records what no page may do. */
function watch(page) {
	const origins = Object.values(fx.nodes).map((n) => n.url);
	page.on('request', (req) => {
		const u = req.url();
		if (!origins.some((o) => u.startsWith(o + '/')) && !u.startsWith('data:') &&
			!u.startsWith('blob:'))
			problems.push(`a request left the node: ${u}`);
	});
	page.on('console', (msg) => {
		if (/Content.Security.Policy|Refused to (load|execute|apply)/i.test(msg.text()))
			problems.push(`CSP violation on ${page.url()}: ${msg.text()}`);
	});
	page.on('pageerror', (err) => problems.push(`script error on ${page.url()}: ${err.message}`));
	return page;
}

function assertNoProblems() {
	assert.deepEqual(problems, [], problems.join('\n'));
}

async function newPage(browser, options) {
	const context = await browser.newContext({ locale: 'en-GB', ...options });
	const page = watch(await context.newPage());
	page.setDefaultTimeout(15000);
	return { context, page };
}

/* A screenshot kept as an artifact, and for the docs when run.py --docs. */
async function shot(target, name, options) {
	const file = path.join(fx.artifacts, name + '.png');
	await target.screenshot({ path: file, ...options });
	if (fx.docs_images) {
		fs.mkdirSync(fx.docs_images, { recursive: true });
		fs.copyFileSync(file, path.join(fx.docs_images, name + '.png'));
	}
	return file;
}

/* What the QR code in a picture holds (Debian's zbarimg). */
function zbar(file) {
	return execFileSync('zbarimg', ['--raw', '-q', file], { encoding: 'utf8', timeout: 30000 })
		.replace(/\n$/, '');
}

async function signIn(page, space, account, next) {
	const base = fx.nodes[space].url;
	await page.goto(base + '/signin' + (next ? '?next=' + encodeURIComponent(next) : ''));
	await page.fill('#name', account.name);
	await page.fill('#password', account.password);
	await page.press('#password', 'Enter');
	await page.waitForURL(base + (next || '/desk'));
	await page.waitForSelector('body.ready');
}

/* The claims of a compact JWS (not verified: the host does that). */
function jwsClaims(tokenText) {
	const part = tokenText.split('.')[1];
	return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function nodeLog(space) {
	return fs.readFileSync(fx.nodes[space].log, 'utf8');
}

module.exports = {
	fx, cli, cliRun, staff, token, launch, watch, newPage, shot, zbar, signIn, jwsClaims, nodeLog,
	assertNoProblems, problems,
};
