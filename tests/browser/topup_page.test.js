// End-to-end test of the Top Up page in headless Chromium against the real local stack (run.sh).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

function need(name) {
    const v = process.env[name];
    if (!v) {
        throw new Error(`${name} is not set: run this test through tests/browser/run.sh`);
    }
    return v;
}

const BASE = need('TOPUP_BASE_URL');
const TOKEN = need('TOPUP_TOKEN');
const SHORT_TOKEN = need('TOPUP_SHORT_TOKEN'); /* issued with a 1 s lifetime */
const ACCOUNT = need('TOPUP_ACCOUNT');
const PAYEE_BANK = need('TOPUP_PAYEE_BANK');
const PAYEE_NAME = need('TOPUP_PAYEE_NAME');
const PAYEE_NUMBER = need('TOPUP_PAYEE_NUMBER');
const SUPPORT_URL = need('TOPUP_SUPPORT_URL'); /* INTAKE_SUPPORT_URL, with {code} */
const SHOTS = need('TOPUP_SCREENSHOT_DIR');
const WORK = need('TOPUP_WORK_DIR');
const STATEMENT_IMPORT = need('TOPUP_STATEMENT_IMPORT');
const KAFKA = need('KAFKA_BOOTSTRAP_SERVERS');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIME_ZONE = 'Asia/Shanghai';
/* Waits for the pipeline (import -> reconciliation -> ledger): generous, it is not a speed test. */
const CREDIT_WAIT_MS = 120000;

let browser;
let context;
let page;
const pageErrors = [];
const shared = {}; /* orders created by earlier steps */

async function shot(name) {
    await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

/* Evaluated through the DevTools protocol: the service's CSP (script-src 'self') stays in force. */
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/* axe-core's WCAG 2.1 A/AA and best-practice rules on the page as it is now: no violations. */
async function expectAccessible(p, what) {
    /* A list being reloaded is faded on purpose: check the page as it settles, not mid-load. */
    await p.waitForFunction(() => ![...document.querySelectorAll('[aria-busy="true"]')]
        .some((el) => el.checkVisibility()), null, { timeout: 30000 });
    if (!(await p.evaluate(() => typeof window.axe !== 'undefined'))) {
        await p.evaluate(AXE_SOURCE);
    }
    const r = await p.evaluate(() => window.axe.run(document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    }));
    const found = r.violations.map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    assert.deepEqual(found, [], `accessibility of ${what}`);
    assert.ok(r.passes.length > 10, 'axe ran its rules');
}

/* The API directly, as the account (to check what the page shows against the system of record). */
async function apiCall(method, p, body, headers) {
    const res = await fetch(BASE + p, {
        method,
        headers: Object.assign({ Authorization: 'Bearer ' + TOKEN, Accept: 'application/json' },
                               body === undefined ? {} : { 'Content-Type': 'application/json' },
                               headers || {}),
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function waitFor(what, fn, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
        last = await fn();
        if (last) {
            return last;
        }
        await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function fieldError(field) {
    return page.locator('#' + field + '-error');
}

async function expectFieldError(field, code) {
    const el = fieldError(field);
    await el.waitFor({ state: 'visible' });
    assert.equal(await el.getAttribute('data-code'), code, `error code shown next to ${field}`);
    assert.ok((await el.textContent()).trim().length > 0, `message next to ${field}`);
}

async function expectNoFieldError(field) {
    assert.equal(await fieldError(field).isVisible(), false, `no error next to ${field}`);
}

async function fillForm(opts) {
    if (opts.preset) {
        await page.getByRole('radio', { name: '¥' + opts.preset, exact: true }).check();
    } else {
        await page.getByRole('radio', { name: 'Custom', exact: true }).check();
        await page.getByLabel('Custom amount (CNY)').fill(opts.custom);
    }
    await page.getByRole('textbox', { name: 'Remitter name', exact: true }).fill(opts.name);
    await page.getByRole('textbox', { name: 'Bank name', exact: true }).fill(opts.bank);
    await page.getByRole('textbox', { name: 'Note for this order (optional)', exact: true })
        .fill(opts.remarks || '');
    const agree = page.getByLabel('I have read and agree to the Recharge Agreement.');
    if (opts.agree) {
        await agree.check();
    } else {
        await agree.uncheck();
    }
}

/* Submits the form; the page moves to the new order's own view (#orders/CODE). */
async function submitAndReadResult() {
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.locator('#order-detail').waitFor({ state: 'visible' });
    const codeEl = page.locator('#pay-fields [data-field="code"] .pay-value');
    await codeEl.waitFor();
    const code = (await codeEl.textContent()).trim();
    assert.match(code, /^[0-9A-Z]{6,16}$/, 'a reference code is shown');
    assert.equal(new URL(page.url()).hash, '#orders/' + code, 'the order has an address of its own');
    return code;
}

/* The value shown in the order view's "how to pay" box for one field. */
async function payValue(p, field) {
    return (await p.locator(`#pay-fields [data-field="${field}"] .pay-value`).textContent()).trim();
}

async function timelineOf(p) {
    return p.locator('#detail-timeline li').evaluateAll((lis) =>
        lis.map((li) => li.dataset.step + ':' + li.dataset.state));
}

/* The two sizes every view is checked at, in both languages. */
const LAYOUTS = [
    { name: 'desktop', width: 1440, height: 900 },
    { name: 'phone', width: 390, height: 844 },
];
const LANGS = ['en', 'zh'];

/*
 * A signed-in page of its own at one size and language, opened at a hash (#orders/CODE, ...).
 * The token is put into the tab's sessionStorage before the page's scripts run, as a sign-in would.
 */
async function openAt(lang, layout, hash) {
    const ctx = await newContext(lang === 'zh' ? 'zh-CN' : 'en-US', layout);
    await ctx.addInitScript((tok) => sessionStorage.setItem('topup.token', tok), TOKEN);
    const p = await ctx.newPage();
    watchErrors(p);
    p.setDefaultTimeout(30000);
    await p.goto('/' + hash);
    await p.locator('#app').waitFor({ state: 'visible' });
    return { ctx, p };
}

/*
 * What sticks out sideways: the document wider than the window, any element reaching past the
 * window's right edge, and any box that scrolls sideways (a table behind an unmarked scroll).
 * Hidden elements and form controls' own text are not layout.
 */
async function overflowOf(p) {
    return p.evaluate(() => {
        const out = [];
        const de = document.documentElement;
        const width = de.clientWidth;
        if (de.scrollWidth > width) {
            out.push(`the document is ${de.scrollWidth} px wide in a ${width} px window`);
        }
        const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
            (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '');
        for (const el of document.querySelectorAll('body *')) {
            if (el.closest('.visually-hidden, .skip-link, [hidden], dialog:not([open]), thead')) {
                continue;
            }
            const r = el.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) {
                continue;
            }
            if (r.right > width + 0.5) {
                out.push(`${name(el)} ends at ${Math.round(r.right)} px (window ${width} px)`);
            }
            const cs = getComputedStyle(el);
            if (!['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName) &&
                ['auto', 'scroll', 'hidden'].includes(cs.overflowX) && el.scrollWidth > el.clientWidth + 1) {
                out.push(`${name(el)} hides ${el.scrollWidth - el.clientWidth} px sideways`);
            }
        }
        return out;
    });
}

async function shotOf(p, name) {
    await p.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

/* Formats an RFC 3339 time the way the page must: en-GB in the browser's time zone. */
function expectedTime(iso) {
    return new Intl.DateTimeFormat('en-GB', {
        year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
        second: '2-digit', hour12: false, timeZone: TIME_ZONE,
    }).format(new Date(iso));
}

/* ---------- a UsageRecorded event on the wire (protobuf by hand: no protoc needed) ---------- */

function varint(n) {
    let v = BigInt.asUintN(64, BigInt(n));
    const out = [];
    do {
        let b = Number(v & 0x7fn);
        v >>= 7n;
        if (v) {
            b |= 0x80;
        }
        out.push(b);
    } while (v);
    return Buffer.from(out);
}

function pbString(field, s) {
    const b = Buffer.from(s, 'utf8');
    return Buffer.concat([varint((field << 3) | 2), varint(b.length), b]);
}

function pbInt(field, n) {
    return Buffer.concat([varint(field << 3), varint(n)]);
}

function pbMessage(field, bytes) {
    return Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
}

function produceUsage(requestId, amountFen) {
    const envelope = Buffer.concat([
        pbString(1, crypto.randomUUID()),
        pbInt(2, Date.now()),
        pbString(3, 'browser-test'),
        pbInt(4, 1),
        pbString(5, ACCOUNT),
    ]);
    const msg = Buffer.concat([
        pbMessage(1, envelope),
        pbString(2, requestId),
        pbInt(3, amountFen),
        pbString(4, 'wuliang-chat'),
        pbInt(5, 2048),
    ]);
    const file = path.join(WORK, 'usage-' + requestId + '.bin');
    fs.writeFileSync(file, msg);
    /* A file argument is produced as exactly one message. */
    execFileSync('kcat', ['-P', '-b', KAFKA, '-t', 'usage.recorded', '-k', ACCOUNT, file],
                 { stdio: 'inherit', timeout: 60000 });
}

/* ---------- a bank statement that pays an order ---------- */

function csvField(s) {
    return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

/* A CMB corporate statement export: one credit into the payee account, the remittance as given. */
function writeStatement(opts) {
    const today = new Date().toISOString().slice(0, 10);
    const rows = [
        ['交易日', '交易时间', '起息日', '借方金额', '贷方金额', '余额', '收(付)方名称',
         '收(付)方账号', '收(付)方开户行名', '用途', '流水号'],
        [today, '10:00:00', today, '', opts.amount, '100000.00', opts.name, '6222020200112233',
         '中国工商银行北京分行', opts.remittance, opts.txnId],
    ];
    const file = path.join(WORK, 'statement-' + opts.txnId + '.csv');
    fs.writeFileSync(file, rows.map((r) => r.map(csvField).join(',')).join('\n') + '\n');
    return file;
}

function importStatement(file) {
    execFileSync(STATEMENT_IMPORT, ['--format', 'csv:cmb-corporate', '--account', PAYEE_NUMBER, file],
                 { stdio: 'inherit', timeout: 120000, env: process.env });
}

/* ---------- the browser ---------- */

/* Script errors and refusals by the Content Security Policy fail the run (last test). */
function watchErrors(p) {
    p.on('pageerror', (e) => pageErrors.push(String(e)));
    p.on('console', (m) => {
        if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) {
            pageErrors.push(m.text());
        }
    });
}

async function newContext(locale, layout) {
    const ctx = await browser.newContext({
        locale,
        timezoneId: TIME_ZONE,
        viewport: { width: (layout || LAYOUTS[0]).width, height: (layout || LAYOUTS[0]).height },
        baseURL: BASE,
    });
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
    return ctx;
}

before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    fs.mkdirSync(WORK, { recursive: true });
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ],
    });
    context = await newContext('en-US');
    page = await context.newPage();
    watchErrors(page);
    page.setDefaultTimeout(30000);
});

after(async () => {
    if (browser) {
        await browser.close();
    }
});

test('sign-in refuses a forged token and accepts the issued one', async () => {
    await page.goto('/');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shot('00-sign-in');
    await expectAccessible(page, 'the sign-in form');

    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#token-error').waitFor({ state: 'visible' });

    const forged = TOKEN.slice(0, -4) + (TOKEN.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    await page.getByLabel('Account token').fill(forged);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('This token was not accepted').waitFor();
    assert.equal(await page.locator('#app').isVisible(), false);

    await page.getByLabel('Account token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('tab', { name: 'Overview' }).waitFor();
    assert.equal(await page.getByRole('tab', { name: 'Overview' }).getAttribute('aria-selected'),
                 'true');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('topup.token')), TOKEN);
    await page.locator('#account-label').getByText(ACCOUNT).waitFor();
});

test('overview shows the balance and the payee account from configuration', async () => {
    await assert.doesNotReject(page.locator('#balance-amount').getByText('¥0.00').waitFor());
    await page.locator('#payee-number').getByText(PAYEE_NUMBER, { exact: true }).waitFor();
    assert.equal(await page.locator('#payee-bank').textContent(), PAYEE_BANK);
    assert.equal(await page.locator('#payee-name').textContent(), PAYEE_NAME);
    for (const p of ['¥50', '¥100', '¥500', '¥1,000', 'Custom']) {
        assert.ok(await page.getByRole('radio', { name: p, exact: true }).count(), `preset ${p}`);
    }
    const channel = page.getByRole('radio', { name: 'Bank Transfer' });
    assert.equal(await channel.isChecked(), true, 'the channel is Bank Transfer');
    await shot('01-overview');
    await expectAccessible(page, 'the overview');
});

test('validation errors appear next to the fields, with the API codes', async () => {
    await page.getByRole('radio', { name: 'Custom', exact: true }).check();
    await page.getByLabel('Custom amount (CNY)').fill('');
    await page.getByRole('button', { name: 'Submit' }).click();
    await expectFieldError('amount', 'invalid_amount');
    await expectFieldError('remitter_name', 'remitter_name_required');
    await expectFieldError('remitter_bank', 'remitter_bank_required');
    await expectFieldError('agreement_accepted', 'agreement_required');
    await expectNoFieldError('remarks');
    assert.equal(await page.getByLabel('Remitter name').getAttribute('aria-invalid'), 'true');
    await page.getByRole('alert').filter({ hasText: 'Please correct' }).waitFor();
    await shot('02-overview-validation');
    await expectAccessible(page, 'the form with its errors');

    /* Each case the page catches, the API refuses with the same code (the API is the authority). */
    const cases = [
        { custom: '49.99', field: 'amount', code: 'amount_below_minimum' },
        { custom: '10.001', field: 'amount', code: 'invalid_amount' },
        { custom: '1e3', field: 'amount', code: 'invalid_amount' },
        { custom: '100', remarks: 'x'.repeat(201), field: 'remarks', code: 'remarks_too_long' },
    ];
    for (const c of cases) {
        await fillForm({ custom: c.custom, name: '张三', bank: '招商银行', remarks: c.remarks,
                         agree: true });
        await page.getByRole('button', { name: 'Submit' }).click();
        await expectFieldError(c.field, c.code);
        const body = { amount: c.custom, channel: 'bank_transfer', remitter_name: '张三',
                       remitter_bank: '招商银行', remarks: c.remarks || '',
                       agreement_accepted: true };
        const r = await apiCall('POST', '/v1/topup-orders', body,
                                { 'Idempotency-Key': crypto.randomUUID() });
        assert.ok(r.status === 400 || r.status === 422, `API refuses ${c.custom}: ${r.status}`);
        assert.equal(r.body.error.code, c.code, `API code for ${JSON.stringify(c)}`);
        assert.equal(r.body.error.field, c.field);
    }
    await fillForm({ custom: '49.99', name: '张三', bank: '招商银行', agree: true });
    await page.getByRole('button', { name: 'Submit' }).click();
    await expectFieldError('amount', 'amount_below_minimum');
    assert.match(await fieldError('amount').textContent(), /50\.00/);
    await shot('03-overview-below-minimum');

    /* Editing a field clears its message. */
    await page.getByLabel('Custom amount (CNY)').fill('60');
    await expectNoFieldError('amount');

    const list = await apiCall('GET', '/v1/topup-orders');
    assert.equal(list.body.orders.length, 0, 'no order was created by invalid submissions');
});

test('a new order opens its own view: timeline, and every transfer field with a copy button', async () => {
    await fillForm({ preset: '500', name: '张三', bank: '招商银行', remarks: 'first top-up',
                     agree: true });
    const code = await submitAndReadResult();
    shared.presetCode = code;
    const view = page.locator('#order-detail');
    assert.match(await view.locator('#detail-title').textContent(),
                 new RegExp(`Order ${code} created: complete your bank transfer`));
    assert.equal(await view.locator('#detail-status [data-status]').getAttribute('data-status'),
                 'pending');
    assert.match(await page.locator('#detail-instruction').textContent(), new RegExp(code));
    assert.equal(await payValue(page, 'account_name'), PAYEE_NAME);
    assert.equal(await payValue(page, 'bank_name'), PAYEE_BANK);
    assert.equal(await payValue(page, 'account_number'), PAYEE_NUMBER);
    assert.equal(await payValue(page, 'amount'), '¥500.00');
    assert.deepEqual(await timelineOf(page),
                     ['created:done', 'awaiting:current', 'received:todo', 'credited:todo']);

    /* Each field copies what the bank's form wants: the number without spaces, the bare amount. */
    const copies = [
        ['Payee account name', PAYEE_NAME],
        ['Payee bank', PAYEE_BANK],
        ['Payee account number', PAYEE_NUMBER.replace(/\s+/g, '')],
        ['Exact amount', '500.00'],
        ['Reference code', code],
    ];
    for (const [what, want] of copies) {
        await view.getByRole('button', { name: 'Copy ' + what, exact: true }).click();
        await page.locator('#copy-status').getByText(what + ' copied').waitFor();
        assert.equal(await page.evaluate(() => navigator.clipboard.readText()), want, what);
    }

    const r = await apiCall('GET', '/v1/topup-orders/' + code);
    assert.equal(r.status, 200);
    assert.equal(r.body.amount, '500.00');
    assert.equal(r.body.status, 'pending');
    assert.equal(r.body.remitter_name, '张三');
    assert.equal(await page.locator('#detail-timeline [data-step="created"] time').textContent(),
                 expectedTime(r.body.created_at), 'times in the browser time zone');
    assert.equal(await page.locator('#detail-remitter').textContent(), '张三');
    await shot('04-order-created');
    await expectAccessible(page, 'the created order');

    /* A reload keeps the address and shows how to pay again. */
    await page.reload();
    await page.locator('#pay-fields [data-field="code"] .pay-value').getByText(code).waitFor();
    assert.equal(await payValue(page, 'account_number'), PAYEE_NUMBER);
    assert.match(await page.locator('#detail-title').textContent(), new RegExp(`Order ${code}`));

    /* Switching the language redraws the view in place, copy buttons included. */
    await page.locator('#lang-select').selectOption('zh');
    await page.locator('#pay-fields [data-field="account_number"] dt').getByText('收款账号').waitFor();
    await page.getByRole('button', { name: '复制参考码', exact: true }).waitFor();
    assert.match(await page.locator('#detail-summary').textContent(), /等待您转账 ¥500\.00/);
    await page.locator('#lang-select').selectOption('en');
    await page.locator('#pay-fields [data-field="account_number"] dt').getByText('Payee account number')
        .waitFor();
});

test('coming back later: the overview and the orders list lead to how to pay, at both sizes in both languages', async () => {
    const code = shared.presetCode;
    const labels = {
        en: { how: 'How to pay order ' + code, number: 'Payee account number', copy: 'Copy Reference code' },
        zh: { how: `订单 ${code} 的付款方式`, number: '收款账号', copy: '复制参考码' },
    };
    for (const layout of LAYOUTS) {
        for (const lang of LANGS) {
            const L = labels[lang];
            /* The overview lists the orders still awaiting a transfer, each with its way back. */
            const { ctx, p } = await openAt(lang, layout, '#overview');
            const waiting = p.locator(`#awaiting-list li[data-code="${code}"]`);
            await waiting.waitFor();
            assert.match(await waiting.textContent(), /¥500\.00/);
            await waiting.getByRole('link', { name: L.how, exact: true }).click();
            await p.locator('#pay-fields [data-field="code"] .pay-value').getByText(code).waitFor();
            await p.goto('/#overview');
            await shotOf(p, `overview-awaiting-${lang}-${layout.name}`);
            await expectAccessible(p, `the overview with an order awaiting transfer at ${layout.name} in ${lang}`);
            /* And so does the orders list. */
            await p.goto('/#orders');
            await p.getByRole('link', { name: L.how, exact: true }).click();
            await p.locator('#pay-fields [data-field="code"] .pay-value').getByText(code).waitFor();
            assert.equal(new URL(p.url()).hash, '#orders/' + code);
            assert.equal(await p.locator('#pay-fields [data-field="account_number"] dt').textContent(),
                         L.number);
            assert.equal(await payValue(p, 'account_number'), PAYEE_NUMBER);
            assert.equal(await p.locator('#pay-fields button').count(), 5, 'one copy button a field');
            await p.getByRole('button', { name: L.copy, exact: true }).click();
            assert.equal(await p.evaluate(() => navigator.clipboard.readText()), code);
            const instruction = await p.locator('#detail-instruction').textContent();
            assert.match(instruction, new RegExp(code));
            assert.match(instruction, lang === 'zh' ? /附言/ : /remark/);
            await shotOf(p, `order-pending-${lang}-${layout.name}`);
            await expectAccessible(p, `the pending order at ${layout.name} size in ${lang}`);
            await ctx.close();
        }
    }
});

test('an order with a custom amount', async () => {
    await page.getByRole('tab', { name: 'Overview' }).click();
    await fillForm({ custom: '123.4', name: '张三', bank: '招商银行', agree: true });
    const code = await submitAndReadResult();
    shared.customCode = code;
    assert.equal(await payValue(page, 'amount'), '¥123.40');
    const r = await apiCall('GET', '/v1/topup-orders/' + code);
    assert.equal(r.body.amount, '123.40');
    assert.equal(r.body.status, 'pending');
});

test('orders tab: newest first, badges, cancel with the confirmation dialog', async () => {
    await page.getByRole('tab', { name: 'Top Up Orders' }).click();
    const rows = page.locator('#orders-body tr[data-code]');
    await rows.first().waitFor();
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.code)),
                     [shared.customCode, shared.presetCode], 'newest first');
    const presetRow = page.locator(`#orders-body tr[data-code="${shared.presetCode}"]`);
    assert.equal(await presetRow.locator('.badge').textContent(), 'Pending');
    await shot('05-orders');
    await expectAccessible(page, 'the orders tab');

    /* "Keep order" leaves it pending. */
    await presetRow.getByRole('button', { name: 'Cancel order ' + shared.presetCode }).click();
    const dialog = page.getByRole('dialog', { name: 'Cancel this order?' });
    await dialog.waitFor();
    assert.match(await dialog.textContent(), new RegExp(shared.presetCode));
    await shot('06-orders-cancel-dialog');
    await expectAccessible(page, 'the cancel dialog');
    await dialog.getByRole('button', { name: 'Keep order' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await apiCall('GET', '/v1/topup-orders/' + shared.presetCode)).body.status,
                 'pending');

    /* Confirming cancels it; the list updates and the button goes. */
    await presetRow.getByRole('button', { name: 'Cancel order ' + shared.presetCode }).click();
    await dialog.getByRole('button', { name: 'Cancel order' }).click();
    await page.locator('#orders-notice').getByText(`Order ${shared.presetCode} was cancelled.`)
        .waitFor();
    await presetRow.locator('.badge', { hasText: 'Cancelled' }).waitFor();
    assert.equal(await presetRow.getByRole('button').count(), 0, 'no cancel on a cancelled order');
    assert.equal((await apiCall('GET', '/v1/topup-orders/' + shared.presetCode)).body.status,
                 'cancelled');
    await shot('07-orders-cancelled');
});

test('a statement that pays an order: the order view, the balance and the flow follow without reload', async () => {
    await page.getByRole('tab', { name: 'Overview' }).click();
    await page.locator('#balance-amount').getByText('¥0.00').waitFor();
    /* The user waits on the order's own view, as the page left them after the create. */
    await page.goto('/#orders/' + shared.customCode);
    await page.locator('#pay-fields [data-field="code"] .pay-value').getByText(shared.customCode)
        .waitFor();
    const navigations = [];
    page.on('framenavigated', (f) => navigations.push(f.url()));

    const file = writeStatement({
        txnId: 'BT' + crypto.randomBytes(6).toString('hex').toUpperCase(),
        amount: '123.40',
        name: '张三',
        remittance: 'Top up ' + shared.customCode.slice(0, 4) + '-' + shared.customCode.slice(4),
    });
    importStatement(file);

    /* The view follows the order: completed, nothing left inviting a transfer. */
    const view = page.locator('#order-detail');
    await view.locator('#detail-status .badge-completed').waitFor({ timeout: CREDIT_WAIT_MS });
    assert.equal(await page.locator('#detail-title').textContent(), `Order ${shared.customCode}`);
    assert.doesNotMatch(await view.textContent(), /complete your bank transfer/i);
    assert.equal(await page.locator('#detail-pay').isVisible(), false, 'no instructions once paid');
    assert.equal(await page.locator('#detail-summary').textContent(),
                 '¥123.40 was credited to your balance. Nothing more to do.');
    assert.deepEqual(await timelineOf(page),
                     ['created:done', 'awaiting:done', 'received:done', 'credited:done']);
    assert.equal(await page.locator('#detail-cancel').isVisible(), false);
    /* The notice names the order and the amount credited. */
    await page.locator('#global-notice')
        .getByText(`Order ${shared.customCode}: ¥123.40 was credited.`).waitFor();
    assert.match(await page.locator('#global-notice').textContent(), /Your balance was updated: ¥123\.40/);
    assert.deepEqual(navigations, [], 'the page followed without a page load');
    await shot('08-order-credited');
    await expectAccessible(page, 'the credited order');
    await page.getByRole('tab', { name: 'Overview' }).click();
    await page.locator('#balance-amount').getByText('¥123.40').waitFor();

    await page.getByRole('tab', { name: 'Account Flows' }).click();
    const row = page.locator('#flows-body tr[data-type="recharge"]');
    await row.first().waitFor();
    const cells = await row.first().locator('td').allTextContents();
    assert.equal(cells[1], 'Recharge');
    assert.equal(cells[2], '+¥123.40');
    assert.equal(cells[3], '¥123.40');
    assert.equal(cells[4], shared.customCode);
    assert.equal(await row.first().locator('.amount-pos').count(), 1, 'credit coloured positive');
});

test('a paid order at both sizes in both languages: its status, no transfer instructions', async () => {
    const code = shared.customCode;
    const summary = {
        en: '¥123.40 was credited to your balance. Nothing more to do.',
        zh: '¥123.40 已计入您的余额，无需其他操作。',
    };
    for (const layout of LAYOUTS) {
        for (const lang of LANGS) {
            const { ctx, p } = await openAt(lang, layout, '#orders/' + code);
            await p.locator('#detail-status .badge-completed').waitFor();
            assert.equal(await p.locator('#detail-summary').textContent(), summary[lang]);
            assert.equal(await p.locator('#detail-pay').isVisible(), false);
            assert.equal(await p.locator('#detail-timeline li[data-state="done"]').count(), 4);
            await shotOf(p, `order-completed-${lang}-${layout.name}`);
            await expectAccessible(p, `the completed order at ${layout.name} size in ${lang}`);
            await ctx.close();
        }
    }
});

test('account flows: consume is signed and coloured, the type filter narrows the list', async () => {
    produceUsage('req-' + crypto.randomBytes(4).toString('hex'), -125);
    await page.getByRole('tab', { name: 'Overview' }).click();
    await page.locator('#balance-amount').getByText('¥122.15').waitFor({ timeout: CREDIT_WAIT_MS });

    await page.getByRole('tab', { name: 'Account Flows' }).click();
    const rows = page.locator('#flows-body tr[data-type]');
    await page.locator('#flows-body tr[data-type="consume"]').waitFor();
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.type)),
                     ['consume', 'recharge'], 'newest first');
    const consume = page.locator('#flows-body tr[data-type="consume"] td');
    assert.equal(await consume.nth(2).textContent(), '−¥1.25');
    assert.equal(await consume.nth(3).textContent(), '¥122.15');
    assert.equal(await page.locator('#flows-body .amount-neg').count(), 1);
    await shot('09-flows');
    await expectAccessible(page, 'the flows tab');

    const filter = page.getByLabel('Type');
    await filter.selectOption('recharge');
    await waitFor('recharge only', async () => {
        const types = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.type));
        return types.length === 1 && types[0] === 'recharge';
    }, 30000);
    await shot('10-flows-recharge');
    await filter.selectOption('consume');
    await waitFor('consume only', async () => {
        const types = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.type));
        return types.length === 1 && types[0] === 'consume';
    }, 30000);
    await filter.selectOption('refund');
    await page.locator('#flows-body td.empty').getByText('No account flows yet.').waitFor();
    await filter.selectOption('all');
    await waitFor('all flows', async () => (await rows.count()) === 2, 30000);
});

test('a cancel that lost the race to a bank match is explained', async () => {
    /* A pending order shown in the list, then paid behind the page's back. */
    const create = await apiCall('POST', '/v1/topup-orders', {
        amount: '88.00', channel: 'bank_transfer', remitter_name: '李四',
        remitter_bank: '中国银行', remarks: '', agreement_accepted: true,
    }, { 'Idempotency-Key': crypto.randomUUID() });
    assert.equal(create.status, 201);
    const code = create.body.code;
    await page.getByRole('tab', { name: 'Top Up Orders' }).click();
    const row = page.locator(`#orders-body tr[data-code="${code}"]`);
    await row.locator('.badge', { hasText: 'Pending' }).waitFor();

    /* The user opens the dialog; while it is open the bank statement matches the order. */
    await row.getByRole('button', { name: 'Cancel order ' + code }).click();
    await page.getByRole('dialog', { name: 'Cancel this order?' }).waitFor();
    importStatement(writeStatement({
        txnId: 'BT' + crypto.randomBytes(6).toString('hex').toUpperCase(),
        amount: '88.00', name: '李四', remittance: code,
    }));
    await waitFor('the order to be matched', async () => {
        const r = await apiCall('GET', '/v1/topup-orders/' + code);
        return r.body.status !== 'pending';
    }, CREDIT_WAIT_MS);

    await page.getByRole('dialog').getByRole('button', { name: 'Cancel order' }).click();
    await page.locator('#orders-notice')
        .getByText(`Order ${code} can no longer be cancelled: your transfer has already been matched to it`)
        .waitFor();
    await row.locator('.badge-processing, .badge-completed').waitFor();
    assert.equal(await row.getByRole('button').count(), 0);
    await shot('11-orders-cancel-too-late');
});

test('a lost response: submitting again reuses the Idempotency-Key, no second order', async () => {
    await page.getByRole('tab', { name: 'Overview' }).click();
    await fillForm({ custom: '77', name: '赵六', bank: '建设银行', agree: true });

    /* The first attempt reaches the service, but its answer is lost on the way back. */
    const keys = [];
    let dropped = 0;
    await page.route('**/v1/topup-orders', async (route) => {
        const req = route.request();
        if (req.method() !== 'POST') {
            return route.fallback();
        }
        keys.push(req.headers()['idempotency-key']);
        const res = await route.fetch();
        if (dropped === 0) {
            dropped++;
            assert.equal(res.status(), 201, 'the service created the order');
            return route.abort('connectionreset');
        }
        return route.fulfill({ response: res });
    });
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.locator('#form-error').getByText('Could not reach the server').waitFor();
    assert.equal(await page.locator('#order-detail').isVisible(), false);

    const code = await submitAndReadResult();
    await page.unroute('**/v1/topup-orders');
    assert.equal(keys.length, 2);
    assert.ok(keys[0] && keys[0] === keys[1], 'the retry carried the same Idempotency-Key');
    assert.equal(await payValue(page, 'amount'), '¥77.00');
    const list = await apiCall('GET', '/v1/topup-orders?limit=100');
    const sevenSeven = list.body.orders.filter((o) => o.amount === '77.00');
    assert.deepEqual(sevenSeven.map((o) => o.code), [code], 'exactly one order was created');
    shared.retryCode = code;
});

test('the form\'s note and the bank transfer\'s remark field (附言/备注) are named apart', async () => {
    const code = shared.retryCode; /* pending */
    const want = {
        en: { label: /^Note for this order \(optional\)$/, bankField: /remark field of your bank transfer \(附言 \/ 备注\)/ },
        zh: { label: /^订单说明\s*（选填）$/, bankField: /银行转账的附言\/备注栏/ },
    };
    for (const layout of LAYOUTS) {
        for (const lang of LANGS) {
            const { ctx, p } = await openAt(lang, layout, '#overview');
            const W = want[lang];
            const note = p.getByRole('textbox', { name: W.label });
            await note.waitFor();
            assert.equal(await note.getAttribute('id'), 'remarks', 'the note is the form\'s remarks');
            if (lang === 'zh') {
                /* 附言/备注 is the bank's field only: the form's own field never takes its name. */
                assert.doesNotMatch(await p.locator('label[for="remarks"]').textContent(), /附言|备注/);
            } else {
                assert.doesNotMatch(await p.locator('label[for="remarks"]').textContent(), /remark/i);
            }
            /* The note's help, the payee box and the order view all point at the bank's field. */
            assert.match(await p.locator('#remarks-help').textContent(), W.bankField);
            assert.match(await p.locator('#payee-help').textContent(), W.bankField);
            await shotOf(p, `form-note-${lang}-${layout.name}`);
            await expectAccessible(p, `the form at ${layout.name} size in ${lang}`);
            await p.goto('/#orders/' + code);
            await p.locator('#pay-fields [data-field="code"] .pay-value').getByText(code).waitFor();
            assert.match(await p.locator('#detail-instruction').textContent(), W.bankField);
            assert.match(await p.locator('#pay-fields [data-field="code"] .help').textContent(),
                         W.bankField);
            assert.doesNotMatch(await p.locator('#order-detail .detail-facts').textContent(),
                                /附言|备注/, 'the note shown on the order is not called a remark');
            await ctx.close();
        }
    }
    /* The note the user typed is shown under its own name on the order. */
    await page.goto('/#orders/' + shared.presetCode);
    await page.locator('#detail-note').getByText('first top-up').waitFor();
    assert.equal(await page.locator('#detail-note').locator('xpath=preceding-sibling::dt').textContent(),
                 'Your note (not sent to the bank)');
});

test('orders pagination moves through pages and back', async () => {
    /* Four orders exist; seven more make eleven: two pages of ten. */
    for (let i = 0; i < 7; i++) {
        const r = await apiCall('POST', '/v1/topup-orders', {
            amount: String(60 + i) + '.00', channel: 'bank_transfer', remitter_name: '王五',
            remitter_bank: '工商银行', agreement_accepted: true,
        }, { 'Idempotency-Key': crypto.randomUUID() });
        assert.equal(r.status, 201);
    }
    await page.getByRole('tab', { name: 'Top Up Orders' }).click();
    await page.getByLabel('Status').selectOption('');
    await page.getByRole('button', { name: 'Refresh' }).click();
    const rows = page.locator('#orders-body tr[data-code]');
    await waitFor('a full first page', async () => (await rows.count()) === 10, 30000);
    const first = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.code));
    assert.equal(await page.getByRole('button', { name: 'Previous' }).isDisabled(), true);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.locator('#orders-page').getByText('Page 2').waitFor();
    await waitFor('the second page', async () => (await rows.count()) === 1, 30000);
    assert.equal(await rows.first().getAttribute('data-code'), shared.presetCode, 'oldest last');
    assert.equal(await page.getByRole('button', { name: 'Next' }).isDisabled(), true);
    await page.getByRole('button', { name: 'Previous' }).click();
    await page.locator('#orders-page').getByText('Page 1').waitFor();
    await waitFor('the first page again', async () => (await rows.count()) === 10, 30000);
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.code)), first);

    await page.getByLabel('Status').selectOption('cancelled');
    await waitFor('cancelled only', async () => {
        const codes = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.code));
        return codes.length === 1 && codes[0] === shared.presetCode;
    }, 30000);
    await page.getByLabel('Status').selectOption('');
});

test('cancel from the order view: it says so and stops showing how to pay', async () => {
    const create = await apiCall('POST', '/v1/topup-orders', {
        amount: '66.60', channel: 'bank_transfer', remitter_name: '王五',
        remitter_bank: '工商银行', agreement_accepted: true,
    }, { 'Idempotency-Key': crypto.randomUUID() });
    assert.equal(create.status, 201);
    const code = create.body.code;
    await page.goto('/#orders/' + code);
    await page.locator('#pay-fields [data-field="code"] .pay-value').getByText(code).waitFor();
    await page.locator('#order-detail').getByRole('button', { name: 'Cancel', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Cancel this order?' });
    await dialog.getByRole('button', { name: 'Cancel order' }).click();
    await page.locator('#detail-notice').getByText(`Order ${code} was cancelled.`).waitFor();
    await page.locator('#detail-status .badge-cancelled').waitFor();
    assert.equal(await page.locator('#detail-pay').isVisible(), false, 'no instructions once cancelled');
    assert.deepEqual(await timelineOf(page), ['created:done', 'awaiting:done', 'cancelled:stopped']);
    assert.match(await page.locator('#detail-summary').textContent(), /Do not send a transfer/);
    assert.equal(await page.locator('#detail-cancel').isVisible(), false);
    assert.equal((await apiCall('GET', '/v1/topup-orders/' + code)).body.status, 'cancelled');
    await shot('11b-order-cancelled');
    await expectAccessible(page, 'the cancelled order');

    /* An address of an order that is not this account's says so. */
    await page.goto('/#orders/TU0000000X');
    await page.locator('#detail-notice').getByText('There is no order TU0000000X on this account.')
        .waitFor();
});

test('Chinese by browser language, and the language switch', async () => {
    const zhContext = await newContext('zh-CN');
    const zh = await zhContext.newPage();
    watchErrors(zh);
    await zh.goto('/');
    await zh.evaluate((tok) => sessionStorage.setItem('topup.token', tok), TOKEN);
    await zh.reload();
    await zh.getByRole('tab', { name: '概览' }).waitFor();
    assert.equal(await zh.evaluate(() => document.documentElement.lang), 'zh-CN');
    await zh.locator('#balance-amount').getByText('¥210.15').waitFor();
    await zh.getByRole('button', { name: '提交' }).click();
    await zh.locator('#remitter_name-error').getByText('请输入汇款人姓名。').waitFor();
    await zh.screenshot({ path: path.join(SHOTS, '12-zh-overview.png'), fullPage: true });
    await expectAccessible(zh, 'the overview in Chinese');
    await zh.getByRole('tab', { name: '账户流水' }).click();
    await zh.locator('#flows-body tr[data-type="recharge"] td').nth(1).getByText('充值').waitFor();
    await zh.screenshot({ path: path.join(SHOTS, '13-zh-flows.png'), fullPage: true });

    await zh.getByLabel('语言').selectOption('en');
    await zh.getByRole('tab', { name: 'Account Flows' }).waitFor();
    assert.equal(await zh.evaluate(() => document.documentElement.lang), 'en');
    await zh.locator('#flows-body tr[data-type="recharge"] td').nth(1).getByText('Recharge')
        .waitFor();
    await zhContext.close();
});

test('an expired token sends the user back to sign-in with a clear message', async () => {
    /* The short token was issued with a 1 s lifetime before the browser started. */
    const ctx = await newContext('en-US');
    const p = await ctx.newPage();
    await p.goto('/');
    await p.evaluate((tok) => sessionStorage.setItem('topup.token', tok), SHORT_TOKEN);
    await p.reload();
    await p.getByRole('alert').getByText('Your session has expired. Sign in again with a new token.')
        .waitFor();
    assert.equal(await p.locator('#app').isVisible(), false);
    assert.equal(await p.evaluate(() => sessionStorage.getItem('topup.token')), null);
    await p.screenshot({ path: path.join(SHOTS, '14-sign-in-expired.png'), fullPage: true });
    await ctx.close();
});

test('keyboard: arrow keys move between tabs; sign-out forgets the account', async () => {
    await page.getByRole('tab', { name: 'Overview' }).click();
    await page.getByRole('tab', { name: 'Overview' }).focus();
    await page.keyboard.press('ArrowRight');
    const orders = page.getByRole('tab', { name: 'Top Up Orders' });
    assert.equal(await orders.getAttribute('aria-selected'), 'true');
    assert.equal(await orders.evaluate((el) => el === document.activeElement), true);
    await page.getByRole('tabpanel', { name: 'Top Up Orders' }).waitFor();
    await page.keyboard.press('End');
    assert.equal(await page.getByRole('tab', { name: 'Account Flows' }).getAttribute('aria-selected'),
                 'true');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('topup.token')), null);
    assert.equal(await page.locator('#app').isVisible(), false);
    assert.equal(await page.locator('#account-label').isVisible(), false);
});

test('a list that fails to load says why in its own words; the rows kept are marked stale', async () => {
    const want = {
        en: { orders: /^Your orders could not be loaded \(the service is temporarily unavailable\)\. Use Refresh to try again\. What is shown was loaded at .+ and may be out of date\.$/,
              flows: /^Your account flows could not be loaded \(the server could not be reached\)\./,
              tag: 'may be out of date', refresh: 'Refresh' },
        zh: { orders: /^订单列表加载失败（服务暂时不可用），请点击“刷新”重试。当前显示的是 .+ 加载的内容，可能已过时。$/,
              flows: /^账户流水加载失败（无法连接服务器）/,
              tag: '可能已过时', refresh: '刷新' },
    };
    for (const layout of LAYOUTS) {
        for (const lang of LANGS) {
            const W = want[lang];
            const { ctx, p } = await openAt(lang, layout, '#orders');
            const rows = p.locator('#orders-body tr[data-code]');
            await rows.first().waitFor();
            const before = await rows.count();
            /* The service answers 503 to the list (as when PostgreSQL is down). */
            await ctx.route('**/v1/topup-orders?**', (route) => route.fulfill({
                status: 503, contentType: 'application/json', headers: { 'Retry-After': '1' },
                body: JSON.stringify({ error: { code: 'unavailable', message: 'database unavailable', field: null } }),
            }));
            await p.locator('#panel-orders').getByRole('button', { name: W.refresh, exact: true }).click();
            const notice = p.locator('#orders-notice');
            await notice.waitFor({ state: 'visible' });
            assert.match(await notice.textContent(), W.orders);
            assert.doesNotMatch(await notice.textContent(), /input is kept|已填写的内容/,
                                'not the form\'s message');
            assert.equal(await notice.evaluate((el) => el.classList.contains('notice-error')), true);
            assert.equal(await rows.count(), before, 'the rows from before stay');
            assert.equal(await p.locator('#orders-body tr[data-stale="true"]').count(), before);
            assert.equal(await p.locator('#orders-table').getAttribute('data-stale'), 'true');
            await rows.first().locator('.stale-tag').getByText(W.tag, { exact: true }).waitFor();
            await shotOf(p, `orders-load-failed-${lang}-${layout.name}`);
            await expectAccessible(p, `the failed orders list at ${layout.name} size in ${lang}`);

            /* The flows list: the server cannot be reached at all. */
            await ctx.route('**/v1/account-flows?**', (route) => route.abort('connectionrefused'));
            await p.goto('/#flows');
            const fnotice = p.locator('#flows-notice');
            await fnotice.waitFor({ state: 'visible' });
            assert.match(await fnotice.textContent(), W.flows);
            assert.equal(await p.locator('#flows-table').getAttribute('data-stale'), 'false',
                         'nothing loaded yet: nothing to mark');

            /* Back again: the error and the marks go. */
            await ctx.unroute('**/v1/topup-orders?**');
            await ctx.unroute('**/v1/account-flows?**');
            await p.locator('#panel-flows').getByRole('button', { name: W.refresh, exact: true }).click();
            await p.locator('#flows-body tr[data-type]').first().waitFor();
            assert.equal(await fnotice.isVisible(), false);
            await p.goto('/#orders');
            await p.locator('#orders-table[data-stale="false"]').waitFor();
            assert.equal(await p.locator('#orders-body tr[data-stale]').count(), 0);
            assert.equal(await notice.isVisible(), false);
            await ctx.close();
        }
    }
});

test('nothing overflows at 320, 390, 1440 and 1920 px in either language; lists become cards', async () => {
    /* Every view with real content: orders of every status (one with a note), flows, the order views. */
    const views = ['#overview', '#orders', '#flows', '#orders/' + shared.retryCode,
                   '#orders/' + shared.customCode, '#orders/' + shared.presetCode];
    for (const width of [320, 390, 1440, 1920]) {
        for (const lang of LANGS) {
            const layout = { name: String(width), width: width, height: width < 1000 ? 844 : 900 };
            const { ctx, p } = await openAt(lang, layout, '#overview');
            for (const hash of views) {
                await p.goto('/' + hash);
                if (hash === '#orders') {
                    await p.locator('#orders-body tr[data-code]').first().waitFor();
                } else if (hash === '#flows') {
                    await p.locator('#flows-body tr[data-type]').first().waitFor();
                } else if (hash.startsWith('#orders/')) {
                    await p.locator('#detail-status [data-status]').waitFor();
                } else {
                    await p.locator('#presets input').first().waitFor({ state: 'attached' });
                }
                assert.deepEqual(await overflowOf(p), [], `${hash} at ${width} px in ${lang}`);
            }
            /* The pending order's Cancel is in sight, and narrow lists are cards, not tables. */
            await p.goto('/#orders');
            const row = p.locator(`#orders-body tr[data-code="${shared.retryCode}"]`);
            const cancel = row.getByRole('button', { name: lang === 'zh' ? '取消订单 ' + shared.retryCode
                                                                        : 'Cancel order ' + shared.retryCode });
            await cancel.waitFor();
            /* Measured in one go in the page: a list refresh in between cannot detach the row. */
            const m = await p.evaluate((code) => {
                const tr = document.querySelector(`#orders-body tr[data-code="${code}"]`);
                const b = tr.querySelector('td.actions .btn-danger-ghost').getBoundingClientRect();
                return {
                    left: b.left, right: b.right, window: document.documentElement.clientWidth,
                    display: getComputedStyle(tr).display,
                    label: getComputedStyle(tr.children[1], '::before').content,
                };
            }, shared.retryCode);
            assert.ok(m.left >= 0 && m.right <= m.window, `Cancel in sight at ${width} px: ${JSON.stringify(m)}`);
            assert.equal(m.display, width < 1024 ? 'block' : 'table-row', `rows at ${width} px`);
            if (width < 1024) {
                /* Each card names its fields. */
                assert.equal(m.label, JSON.stringify(lang === 'zh' ? '金额' : 'Amount'));
            }
            await shotOf(p, `orders-${lang}-${width}`);
            if (width === 390 || width === 1440) {
                await expectAccessible(p, `the orders list at ${width} px in ${lang}`);
                await p.goto('/#flows');
                await p.locator('#flows-body tr[data-type]').first().waitFor();
                await shotOf(p, `flows-${lang}-${width}`);
                await expectAccessible(p, `the flows list at ${width} px in ${lang}`);
            }
            await ctx.close();
        }
    }
    /* The sign-in card, signed out: where a token comes from, at every width in both languages. */
    for (const width of [320, 390, 1440, 1920]) {
        for (const lang of LANGS) {
            const ctx = await newContext(lang === 'zh' ? 'zh-CN' : 'en-US',
                                         { width: width, height: width < 1000 ? 844 : 900 });
            const p = await ctx.newPage();
            watchErrors(p);
            await p.goto('/');
            await p.locator('#signin').waitFor();
            assert.match(await p.locator('#token-where').textContent(),
                         /topupctl token issue --account ACCOUNT_ID --ttl 24h/);
            assert.match(await p.locator('#token-where').textContent(),
                         lang === 'zh' ? /令牌从哪里来/ : /Where a token comes from/);
            assert.deepEqual(await overflowOf(p), [], `sign-in at ${width} px in ${lang}`);
            if (width === 390 || width === 1440) {
                await shotOf(p, `sign-in-${lang}-${width}`);
                await expectAccessible(p, `sign-in at ${width} px in ${lang}`);
            }
            await ctx.close();
        }
    }
    /* An empty list is one readable message, not a word per line. */
    const { ctx, p } = await openAt('en', { name: '320', width: 320, height: 700 }, '#flows');
    await p.getByLabel('Type').selectOption('refund');
    const empty = p.locator('#flows-body td.empty');
    await empty.getByText('No account flows yet.').waitFor();
    const h = await empty.evaluate((td) => td.getBoundingClientRect().height);
    assert.ok(h < 80, `the empty state fits on a line or two (${h} px)`);
    assert.deepEqual(await overflowOf(p), []);
    await ctx.close();
});

test('a short and an over payment: what arrived, what was credited, what to do, support', async () => {
    /* Two orders paid with other amounts than ordered (the reference code matches them). */
    const cases = [
        { ordered: '100.00', sent: '80.00', kind: 'short', gap: '¥20.00' },
        { ordered: '60.00', sent: '75.50', kind: 'over', gap: '¥15.50' },
    ];
    for (const c of cases) {
        const r = await apiCall('POST', '/v1/topup-orders', {
            amount: c.ordered, channel: 'bank_transfer', remitter_name: '张三',
            remitter_bank: '招商银行', agreement_accepted: true,
        }, { 'Idempotency-Key': crypto.randomUUID() });
        assert.equal(r.status, 201);
        c.code = r.body.code;
        importStatement(writeStatement({
            txnId: 'BT' + crypto.randomBytes(6).toString('hex').toUpperCase(),
            amount: c.sent, name: '张三', remittance: c.code,
        }));
    }
    for (const c of cases) {
        const o = await waitFor(`order ${c.code} completed`, async () => {
            const r = await apiCall('GET', '/v1/topup-orders/' + c.code);
            return r.body.status === 'completed' ? r.body : null;
        }, CREDIT_WAIT_MS);
        /* The system of record: the amount that arrived was credited, and the order is flagged. */
        assert.equal(o.credited_amount, c.sent);
        assert.equal(o.amount_mismatch, true);
    }
    const want = {
        en: { short: "Less arrived than the order's amount", over: "More arrived than the order's amount",
              shortTodo: /20\.00 short.*create a new order.*not matched automatically/,
              overTodo: /15\.50 more than the order.*refunded/, support: 'Contact support about order ' },
        zh: { short: '到账金额少于订单金额', over: '到账金额多于订单金额',
              shortTodo: /少 ¥20\.00.*创建新订单.*不会被自动匹配/, overTodo: /多 ¥15\.50.*退还差额/,
              support: '就订单 ' },
    };
    for (const layout of LAYOUTS) {
        for (const lang of LANGS) {
            const W = want[lang];
            const { ctx, p } = await openAt(lang, layout, '#orders');
            for (const c of cases) {
                await p.goto('/#orders/' + c.code);
                const box = p.locator('#detail-mismatch');
                await box.waitFor({ state: 'visible' });
                assert.equal(await box.getAttribute('data-kind'), c.kind);
                assert.equal(await p.locator('#mismatch-title').textContent(), W[c.kind]);
                assert.equal(await p.locator('#mismatch-ordered').textContent(), '¥' + c.ordered);
                assert.equal(await p.locator('#mismatch-arrived').textContent(),
                             c.sent === '75.50' ? '¥75.50' : '¥80.00');
                assert.equal(await p.locator('#mismatch-credited').textContent(),
                             c.sent === '75.50' ? '¥75.50' : '¥80.00');
                assert.match(await p.locator('#mismatch-todo').textContent(), W[c.kind + 'Todo']);
                assert.match(await p.locator('#mismatch-todo').textContent(), new RegExp(c.code));
                const link = p.getByRole('link', { name: W.support + c.code + (lang === 'zh' ? ' 联系客服' : '') });
                assert.equal(await link.getAttribute('href'), SUPPORT_URL.replace('{code}', c.code));
                assert.doesNotMatch(await p.locator('#detail-summary').textContent(), /Nothing more to do|无需其他操作/);
                assert.equal(await p.locator('#detail-pay').isVisible(), false);
                await shotOf(p, `order-${c.kind}-${lang}-${layout.name}`);
                await expectAccessible(p, `the ${c.kind} payment at ${layout.name} size in ${lang}`);
                assert.deepEqual(await overflowOf(p), [], `the ${c.kind} payment at ${layout.name} in ${lang}`);
            }
            /* The list marks both rows too. */
            await p.goto('/#orders');
            const row = p.locator(`#orders-body tr[data-code="${cases[0].code}"]`);
            await row.waitFor();
            assert.match(await row.textContent(), lang === 'zh' ? /到账金额不一致：¥80\.00/ : /Amount received differs: ¥80\.00/);
            await ctx.close();
        }
    }
});

test('the page raised no script errors and broke no CSP rule', () => {
    assert.deepEqual(pageErrors, []);
});
