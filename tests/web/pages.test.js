/*
 * pages.test.js - the page scripts' own logic, without a browser or a node:
 * a page script is run in a bare context (node:vm) with just what it uses
 * stubbed.  run.py runs it with the browser tests; alone:
 *
 *     node --test tests/web/pages.test.js
 */
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const vm = require('node:vm');

const WWW = path.resolve(__dirname, '..', '..', 'node', 'www');
const ORIGIN = 'http://127.0.0.1:7080';

/*
 * Runs signin.js on /signin?next=NEXT, submits the form with a sign-in the
 * node accepts, and returns where the page sends the browser.
 */
async function afterSignIn(next) {
	let init = null, submit = null, assigned = null;
	const field = (value) => ({ value, focus() {} });
	const form = {
		elements: { name: field('mgr'), password: field('secret') },
		addEventListener(type, fn) { if (type === 'submit') submit = fn; },
	};
	const search = next === null ? '' : '?next=' + encodeURIComponent(next);
	const context = {
		URL, URLSearchParams,
		location: {
			origin: ORIGIN, search,
			assign(to) { assigned = to; },
		},
		document: {
			getElementById: (id) => (id === 'signin-form' ? form : { disabled: false }),
		},
		PS: {
			t: (k) => k,
			api: async () => ({ status: 200, data: {} }),
			flash() {},
			start(opts) { init = opts.init; },
			errorText: () => '',
		},
	};
	vm.runInNewContext(fs.readFileSync(path.join(WWW, 'signin.js'), 'utf8'), context);
	init();
	await submit({ preventDefault() {} });
	return assigned;
}

/* Where a browser really goes when it is sent to `to` from this origin. */
function lands(to) {
	return new URL(to, ORIGIN).origin;
}

test('after sign-in the page goes to a page of this site, or to the desk', async () => {
	for (const [next, want] of [
		[null, '/desk'],
		['', '/desk'],
		['/desk', '/desk'],
		['/manage/members', '/manage/members'],
		['/manage/pass?jti=abc#qr', '/manage/pass?jti=abc#qr'],
		['/manage/../desk', '/desk'],
	])
		assert.equal(await afterSignIn(next), want, `next=${JSON.stringify(next)}`);
});

test('no next value sends the browser to another site', async () => {
	const evil = [
		'//evil.example', '/\\evil.example', '\\\\evil.example', 'https://evil.example/',
		'/\t/evil.example', '/\n/evil.example', '/\r/evil.example', '/\t\\evil.example',
		'/ /evil.example', '/\u00a0/evil.example', '/\u0000/evil.example', '/\u007f',
		'\t//evil.example', 'javascript:alert(1)', 'evil.example', '/%09/x\t',
		'http://127.0.0.1:7080.evil.example/', 'http:evil.example',
	];
	for (const next of evil) {
		const to = await afterSignIn(next);
		assert.equal(lands(to), ORIGIN, `next=${JSON.stringify(next)} -> ${to}`);
		assert.ok(to.startsWith('/') && !to.startsWith('//'), `next=${JSON.stringify(next)} -> ${to}`);
	}
	/* A control character or a space is refused outright, not cleaned up. */
	assert.equal(await afterSignIn('/\t/desk'), '/desk');
	assert.equal(await afterSignIn('/manage/members\n'), '/desk');
	assert.equal(await afterSignIn('/manage/ members'), '/desk');
});

test('a second scan of a member already in says so without naming the wrong place', () => {
	for (const [lang, here, checkOut] of [['en', /\bhere\b/, /check out/i],
		['fr', /\bici\b/, /départ/]]) {
		const strings = JSON.parse(fs.readFileSync(path.join(WWW, 'i18n', lang + '.json'), 'utf8'));
		const s = strings['reason.already_checked_in'];
		assert.match(s, here, `${lang}: ${s}`);
		assert.match(s, checkOut, `${lang}: ${s}`);
	}
});
