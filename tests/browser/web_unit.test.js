// Unit tests of the Top Up page's money formatting and of its two languages (node, no browser).
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const vm = require('node:vm');
const fs = require('node:fs');

const WEB = path.join(__dirname, '..', '..', 'services', 'order-intake', 'web');
const money = require(path.join(WEB, 'money.js'));

test('typed amounts become the API form, exactly as the API accepts them', () => {
    const ok = { '50': '50.00', '100.5': '100.50', '0.50': '0.50', '1000000.00': '1000000.00',
                 '123.45': '123.45' };
    for (const [input, want] of Object.entries(ok)) {
        assert.equal(money.amountCanonical(input), want, input);
    }
    /* The API refuses these (money_parse): so does the page. */
    for (const bad of ['', ' 50', '50 ', '-5', '+5', '1e3', '10.001', '.5', '5.', '050', '00.5',
                       '1,000', '５０', '50.0.0', 'NaN']) {
        assert.equal(money.amountCanonical(bad), null, JSON.stringify(bad));
    }
});

test('fen comparisons are exact beyond the range of floating point', () => {
    assert.equal(money.canonicalToFen('49.99'), 4999n);
    assert.equal(money.canonicalToFen('50.00'), 5000n);
    /* 2^53 + 1 fen: a float would round it. */
    assert.equal(money.canonicalToFen('90071992547409.93'), 9007199254740993n);
    assert.equal(money.fenToAmount(12340n), '123.40');
    assert.equal(money.fenToAmount(5n), '0.05');
    assert.equal(money.fenToAmount(-2000n), '-20.00');
    assert.equal(money.fenToAmount(0n), '0.00');
    assert.equal(money.fenToAmount(9007199254740993n), '90071992547409.93');
    assert.ok(money.canonicalToFen('90071992547409.93') > money.canonicalToFen('90071992547409.92'));
});

test('amounts are shown as CNY with two decimals, grouped, signed on request', () => {
    const cases = [
        ['0.00', false, '¥0.00'],
        ['123.4', false, '¥123.40'],
        ['1234567.89', false, '¥1,234,567.89'],
        ['-1.25', false, '−¥1.25'],
        ['-1.25', true, '−¥1.25'],
        ['100.00', true, '+¥100.00'],
        ['0.00', true, '¥0.00'],
        ['-0.00', true, '¥0.00'],
        ['92233720368547758.07', false, '¥92,233,720,368,547,758.07'],
        ['12.3400', false, '¥12.34'],
        ['007.10', false, '¥7.10'],
    ];
    for (const [value, withSign, want] of cases) {
        assert.equal(money.formatCny(value, withSign), want, `${value} ${withSign}`);
    }
    /* Never rounds: extra non-zero digits stay visible rather than being invented away. */
    assert.equal(money.formatCny('1.005'), '¥1.005');
    assert.equal(money.formatCny(null), '—');
    assert.equal(money.formatCny('abc'), 'abc');
});

test('the sign of an amount string', () => {
    assert.equal(money.amountSign('-0.01'), -1);
    assert.equal(money.amountSign('0.01'), 1);
    assert.equal(money.amountSign('-0.00'), 0);
    assert.equal(money.amountSign(null), 0);
});

test('money.js holds no floating-point arithmetic on amounts', () => {
    const src = fs.readFileSync(path.join(WEB, 'money.js'), 'utf8');
    assert.doesNotMatch(src, /parseFloat|Number\(|toFixed|Math\./);
});

test('English and Chinese have the same messages, with the same parameters', () => {
    const sandbox = { window: {} };
    vm.runInNewContext(fs.readFileSync(path.join(WEB, 'i18n.js'), 'utf8'), sandbox);
    const { en, zh } = sandbox.window.TOPUP_I18N;
    assert.deepEqual(Object.keys(zh).sort(), Object.keys(en).sort());
    const params = (s) => (s.match(/\{\w+\}/g) || []).sort();
    for (const k of Object.keys(en)) {
        assert.deepEqual(params(zh[k]), params(en[k]), k);
    }
});

test('every message id the page uses exists', () => {
    const sandbox = { window: {} };
    vm.runInNewContext(fs.readFileSync(path.join(WEB, 'i18n.js'), 'utf8'), sandbox);
    const { en } = sandbox.window.TOPUP_I18N;
    const html = fs.readFileSync(path.join(WEB, 'index.html'), 'utf8');
    const js = fs.readFileSync(path.join(WEB, 'app.js'), 'utf8');
    const ids = new Set();
    for (const m of html.matchAll(/data-i18n="([^"]+)"/g)) {
        ids.add(m[1]);
    }
    for (const m of html.matchAll(/data-i18n-attr="[^":]+:([^"]+)"/g)) {
        ids.add(m[1]);
    }
    for (const m of js.matchAll(/\bt\('([a-zA-Z]+\.[a-zA-Z_]+)'/g)) {
        ids.add(m[1]);
    }
    /* Ids chosen at run time (t(short ? 'a.b' : 'a.c')): every literal with a message prefix. */
    const prefixes = new Set(Object.keys(en).map((k) => k.split('.')[0]));
    for (const m of js.matchAll(/'([a-zA-Z]+)\.([a-zA-Z_]+)'/g)) {
        if (prefixes.has(m[1])) {
            ids.add(m[1] + '.' + m[2]);
        }
    }
    /* Ids built from a prefix and a value: the order view's steps, their states, the pay fields. */
    for (const s of ['created', 'awaiting', 'received', 'credited', 'cancelled', 'expired']) {
        ids.add('step.' + s);
    }
    for (const s of ['done', 'current', 'todo', 'stopped']) {
        ids.add('stepState.' + s);
    }
    for (const s of ['account_name', 'bank_name', 'account_number', 'amount', 'code']) {
        ids.add('pay.' + s);
    }
    /* Every API validation code the README lists for the form has a message. */
    for (const code of ['invalid_amount', 'amount_below_minimum', 'amount_above_maximum',
                        'invalid_channel', 'remitter_name_required', 'remitter_name_too_long',
                        'remitter_bank_required', 'remitter_bank_too_long', 'remarks_too_long',
                        'invalid_characters', 'agreement_required', 'idempotency_key_reused',
                        'unauthorized', 'token_expired', 'not_found', 'unavailable']) {
        ids.add('error.' + code);
    }
    const missing = [...ids].filter((id) => en[id] === undefined);
    assert.deepEqual(missing, []);
    assert.ok(ids.size > 50, 'the scan found the page\'s message ids');
});
