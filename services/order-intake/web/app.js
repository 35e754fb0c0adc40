// Behaviour of the Top Up page: sign-in, balance polling, the top-up form, orders and account flows.
'use strict';

(function () {
    const TOKEN_KEY = 'topup.token';
    const LANG_KEY = 'topup.lang';
    const BALANCE_POLL_MS = 5000;
    const PAGE_SIZE = 10;
    /*
     * Everything the form offers or checks comes from GET /v1/settings (the service's
     * configuration): no amount of our own. Until it is loaded the form cannot be submitted.
     */
    const limits = {
        loaded: false,
        minFen: null,
        maxFen: null,
        min: null,
        max: null,
        presets: [],
        remarksMax: null,
        nameMax: null,
        supportUrl: '',
    };
    const ANNOUNCED_KEY = 'topup.announced';
    const REQUEST_TIMEOUT_MS = 20000;
    const STATUSES = ['pending', 'processing', 'completed', 'cancelled', 'expired'];
    const FLOW_TYPES = ['recharge', 'consume', 'refund'];

    const $ = (id) => document.getElementById(id);

    const state = {
        token: null,
        lang: 'en',
        tab: 'overview',
        balance: null, /* the API's decimal string, never a float */
        balanceAt: null,
        balanceInflight: false,
        pollTimer: null,
        payee: null,
        /* One Idempotency-Key per distinct form body: a retry of the same body reuses it. */
        pendingSubmit: null,
        submitting: false,
        detail: null, /* {code, order, notice, created} of the order view (#orders/CODE) */
        startedAt: Date.now(),
        fieldErrors: {}, /* field -> {code, params}, kept to re-translate on a language switch */
        formError: null,
        orders: { cursors: [null], page: 0, next: null, rows: [], seq: 0, notice: null },
        flows: { cursors: [null], page: 0, next: null, rows: [], seq: 0, notice: null },
        cancelTarget: null,
    };

    /* ---------- text ---------- */

    function t(key, params) {
        const dict = window.TOPUP_I18N[state.lang] || window.TOPUP_I18N.en;
        let s = dict[key];
        if (s === undefined) {
            s = window.TOPUP_I18N.en[key];
        }
        if (s === undefined) {
            return key;
        }
        return s.replace(/\{(\w+)\}/g, (m, name) =>
            params && params[name] !== undefined ? String(params[name]) : m);
    }

    /* Parameters of the messages of validation codes, from the configured limits. */
    function codeParams(code) {
        switch (code) {
        case 'amount_above_maximum':
            return { max: formatCny(limits.max) };
        case 'amount_below_minimum':
            return { min: formatCny(limits.min) };
        case 'remarks_too_long':
            return { max: limits.remarksMax };
        case 'remitter_name_too_long':
        case 'remitter_bank_too_long':
            return { max: limits.nameMax };
        default:
            return {};
        }
    }

    /* Sentences one after the other: a space between them in English, none in Chinese. */
    function sentences(...parts) {
        return parts.filter((x) => x).join(state.lang === 'zh' ? '' : ' ');
    }

    function hasText(key) {
        return window.TOPUP_I18N.en[key] !== undefined;
    }

    /* The message for an API error code; unknown codes fall back to the server's own message. */
    function errorText(code, params, serverMessage) {
        const p = Object.assign({ code: code }, codeParams(code), params || {});
        if (code && hasText('error.' + code)) {
            return t('error.' + code, p);
        }
        if (serverMessage) {
            return serverMessage;
        }
        return t('error.unknown', p);
    }

    function detectLang() {
        const saved = localStorage.getItem(LANG_KEY);
        if (saved === 'en' || saved === 'zh') {
            return saved;
        }
        const langs = navigator.languages && navigator.languages.length ? navigator.languages
                                                                         : [navigator.language || 'en'];
        for (const l of langs) {
            const low = String(l).toLowerCase();
            if (low.startsWith('zh')) {
                return 'zh';
            }
            if (low.startsWith('en')) {
                return 'en';
            }
        }
        return 'en';
    }

    function locale() {
        return state.lang === 'zh' ? 'zh-CN' : 'en-GB';
    }

    function applyStaticText() {
        document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
        document.querySelectorAll('[data-i18n]').forEach((el) => {
            el.textContent = t(el.getAttribute('data-i18n'));
        });
        document.querySelectorAll('[data-i18n-attr]').forEach((el) => {
            el.getAttribute('data-i18n-attr').split(';').forEach((pair) => {
                const [attr, key] = pair.split(':');
                el.setAttribute(attr.trim(), t(key.trim()));
            });
        });
        $('lang-select').value = state.lang;
    }

    function setLang(lang) {
        state.lang = lang;
        localStorage.setItem(LANG_KEY, lang);
        applyStaticText();
        renderAll();
    }

    /* ---------- money (money.js): decimal strings only, never floating point ---------- */

    const { amountCanonical, canonicalToFen, fenToAmount, formatCny, amountSign, amountField } =
        window.TOPUP_MONEY;

    /* ---------- time ---------- */

    function timeZoneName() {
        try {
            return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
        } catch (e) {
            return '';
        }
    }

    function formatTime(iso) {
        if (!iso) {
            return '—';
        }
        const d = new Date(iso);
        if (isNaN(d.getTime())) {
            return String(iso);
        }
        return new Intl.DateTimeFormat(locale(), {
            year: 'numeric', month: '2-digit', day: '2-digit',
            hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
        }).format(d);
    }

    function timeElement(iso) {
        const el = document.createElement('time');
        if (iso) {
            el.dateTime = iso;
            el.title = iso + (timeZoneName() ? ' (' + timeZoneName() + ')' : '');
        }
        el.textContent = formatTime(iso);
        return el;
    }

    /* ---------- API ---------- */

    class ApiError extends Error {
        constructor(status, code, message, field, body) {
            super(message || code);
            this.status = status;
            this.code = code;
            this.field = field || null;
            this.body = body;
        }
    }

    function uuid() {
        if (window.crypto && typeof crypto.randomUUID === 'function') {
            return crypto.randomUUID();
        }
        const b = crypto.getRandomValues(new Uint8Array(16));
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
        return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' +
               h.slice(16, 20) + '-' + h.slice(20);
    }

    async function api(method, path, opts) {
        const o = opts || {};
        const headers = { Accept: 'application/json', 'Accept-Language': locale() };
        const token = o.token || state.token;
        if (token) {
            headers.Authorization = 'Bearer ' + token;
        }
        if (o.body !== undefined) {
            headers['Content-Type'] = 'application/json';
        }
        Object.assign(headers, o.headers || {});
        const ctl = new AbortController();
        const timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
        let res;
        let text;
        try {
            res = await fetch(path, {
                method: method,
                headers: headers,
                body: o.body === undefined ? undefined : JSON.stringify(o.body),
                cache: 'no-store',
                credentials: 'omit',
                signal: ctl.signal,
            });
            text = await res.text();
        } catch (e) {
            throw new ApiError(0, 'network', t('error.network'), null, null);
        } finally {
            clearTimeout(timer);
        }
        let data = null;
        if (text) {
            try {
                data = JSON.parse(text);
            } catch (e) {
                data = null;
            }
        }
        if (!res.ok) {
            const err = (data && data.error) || {};
            let code = err.code;
            if (!code) {
                code = res.status >= 500 ? 'unavailable' : 'http_' + res.status;
            }
            const apiErr = new ApiError(res.status, code, err.message, err.field, data);
            if (res.status === 401 && !o.noAuthRedirect) {
                authFailed(code);
            }
            throw apiErr;
        }
        return data;
    }

    function query(params) {
        const q = new URLSearchParams();
        Object.keys(params).forEach((k) => {
            if (params[k] !== null && params[k] !== undefined && params[k] !== '') {
                q.set(k, params[k]);
            }
        });
        const s = q.toString();
        return s ? '?' + s : '';
    }

    /* ---------- notices ---------- */

    function showNotice(el, text, kind) {
        if (!text) {
            el.hidden = true;
            el.textContent = '';
            return;
        }
        el.className = 'notice notice-' + (kind || 'info');
        el.textContent = text;
        el.hidden = false;
    }

    /* ---------- sign-in ---------- */

    function showSignIn(noticeKey) {
        stopPolling();
        state.token = null;
        sessionStorage.removeItem(TOKEN_KEY);
        $('app').hidden = true;
        $('sign-out').hidden = true;
        $('account-label').hidden = true;
        $('signin').hidden = false;
        state.signinNotice = noticeKey || null;
        showNotice($('signin-notice'), noticeKey ? t(noticeKey) : '', 'warn');
        $('token-input').focus();
    }

    function authFailed(code) {
        if (!state.token) {
            return;
        }
        showSignIn(code === 'token_expired' ? 'auth.expired' : 'auth.rejected');
    }

    function setTokenError(key) {
        const el = $('token-error');
        state.tokenError = key;
        el.textContent = key ? t(key) : '';
        el.hidden = !key;
        $('token-input').setAttribute('aria-invalid', key ? 'true' : 'false');
    }

    async function signIn(ev) {
        ev.preventDefault();
        const token = $('token-input').value.trim();
        if (!token) {
            setTokenError('auth.tokenRequired');
            $('token-input').focus();
            return;
        }
        setTokenError(null);
        $('signin-submit').disabled = true;
        try {
            const bal = await api('GET', '/v1/balance', { token: token, noAuthRedirect: true });
            if (state.account && bal && bal.account_id !== state.account) {
                clearAccountState();
            }
            state.token = token;
            sessionStorage.setItem(TOKEN_KEY, token);
            $('token-input').value = '';
            showNotice($('signin-notice'), '');
            enterApp(bal);
        } catch (e) {
            if (e.status === 401) {
                setTokenError(e.code === 'token_expired' ? 'auth.expired' : 'auth.rejected');
            } else {
                state.tokenError = null;
                const el = $('token-error');
                el.textContent = errorText(e.code, null, e.message);
                el.hidden = false;
            }
            $('token-input').focus();
        } finally {
            $('signin-submit').disabled = false;
        }
    }

    /* Forgets everything of the account signed in before (another account may sign in next). */
    function clearAccountState() {
        state.account = null;
        state.balance = null;
        state.balanceAt = null;
        state.detail = null;
        state.awaiting = null;
        renderAwaiting();
        state.refunds = null;
        state.refundNotice = null;
        state.refundErrors = {};
        renderRefunds();
        state.pendingSubmit = null;
        $('global-notice').hidden = true;
        $('account-label').textContent = '';
        clearAllErrors();
        resetLists();
        renderBalance();
    }

    function signOut() {
        clearAccountState();
        showSignIn('auth.signedOut');
        showNotice($('signin-notice'), t('auth.signedOut'), 'info');
    }

    function enterApp(balanceData) {
        $('signin').hidden = true;
        $('app').hidden = false;
        $('sign-out').hidden = false;
        resetLists();
        if (balanceData) {
            applyBalance(balanceData, false);
        } else {
            refreshBalance();
        }
        loadSettings();
        startPolling();
        route();
    }

    /* ---------- tabs ---------- */

    const TABS = ['overview', 'orders', 'flows'];

    /* "#orders/TU7K3M9Q2X" is one order's own address; "#orders", "#flows" the tabs. */
    function parseHash() {
        const h = decodeURIComponent(location.hash.replace(/^#/, ''));
        const m = /^orders\/([0-9A-Za-z]{4,16})$/.exec(h);
        if (m) {
            return { tab: 'orders', code: m[1].toUpperCase() };
        }
        return { tab: TABS.includes(h) ? h : 'overview', code: null };
    }

    function route() {
        if (!state.token) {
            return;
        }
        const r = parseHash();
        selectTab(r.tab, false, r.code);
    }

    function selectTab(name, focus, code) {
        state.tab = name;
        TABS.forEach((n) => {
            const tab = $('tab-' + n);
            const on = n === name;
            tab.setAttribute('aria-selected', on ? 'true' : 'false');
            tab.tabIndex = on ? 0 : -1;
            $('panel-' + n).hidden = !on;
        });
        if (focus) {
            $('tab-' + name).focus();
        }
        const want = '#' + name + (code ? '/' + code : '');
        if (location.hash !== want) {
            history.replaceState(null, '', want);
        }
        const detail = name === 'orders' && code;
        $('order-detail').hidden = !detail;
        $('orders-list-card').hidden = !!detail;
        if (!detail) {
            state.detail = null; /* nothing polls an order that is not on screen */
        }
        if (detail) {
            openDetail(code);
        } else if (name === 'orders') {
            loadOrders();
        } else if (name === 'flows') {
            loadFlows();
        } else {
            refreshBalance();
            loadAwaiting();
            loadRefunds();
        }
    }

    function tabKeydown(ev) {
        const i = TABS.indexOf(state.tab);
        let next = null;
        if (ev.key === 'ArrowRight') {
            next = TABS[(i + 1) % TABS.length];
        } else if (ev.key === 'ArrowLeft') {
            next = TABS[(i + TABS.length - 1) % TABS.length];
        } else if (ev.key === 'Home') {
            next = TABS[0];
        } else if (ev.key === 'End') {
            next = TABS[TABS.length - 1];
        }
        if (next) {
            ev.preventDefault();
            selectTab(next, true);
        }
    }

    /* ---------- balance ---------- */

    function applyBalance(data, announce) {
        const value = amountField(data, 'balance');
        if (value === null) {
            return;
        }
        const changed = state.balance !== null && state.balance !== value;
        state.balance = value;
        state.balanceAt = new Date();
        if (data.account_id) {
            state.account = data.account_id;
        }
        renderBalance();
        if (changed && announce) {
            const card = document.querySelector('.balance-card');
            card.classList.remove('flash');
            void card.offsetWidth; /* restart the animation */
            card.classList.add('flash');
            showNotice($('global-notice'), t('balance.credited', { amount: formatCny(value) }),
                       'success');
            onBalanceChanged();
        }
    }

    function renderBalance() {
        const el = $('balance-amount');
        const text = state.balance === null ? '—' : formatCny(state.balance);
        if (el.textContent !== text) {
            el.textContent = text;
        }
        el.setAttribute('data-amount', state.balance === null ? '' : state.balance);
        $('balance-updated').textContent = state.balanceAt
            ? t('balance.updated', { time: formatTime(state.balanceAt.toISOString()) }) : '';
        const label = $('account-label');
        if (state.account) {
            label.textContent = t('auth.account', { account: state.account });
            label.hidden = false;
        }
    }

    async function refreshBalance() {
        if (!state.token || state.balanceInflight) {
            return;
        }
        state.balanceInflight = true;
        try {
            applyBalance(await api('GET', '/v1/balance'), true);
        } catch (e) {
            if (e.status !== 401) {
                $('balance-updated').textContent = t('balance.stale');
            }
        } finally {
            state.balanceInflight = false;
        }
    }

    /* A credit arrived: refresh what shows it (the order on screen, the first list pages). */
    function onBalanceChanged() {
        announceCredits();
        if (state.detail) {
            loadDetail(state.detail.code);
        }
        if (state.tab === 'orders' && state.orders.page === 0 && !state.detail) {
            loadOrders();
        }
        if (state.tab === 'flows' && state.flows.page === 0) {
            loadFlows();
        }
    }

    function announcedCodes() {
        try {
            return JSON.parse(sessionStorage.getItem(ANNOUNCED_KEY) || '[]');
        } catch (e) {
            return [];
        }
    }

    /*
     * Names the orders whose credit made the balance change: orders completed since this page was
     * opened and not announced yet in this tab.
     */
    async function announceCredits() {
        let data;
        try {
            data = await api('GET', '/v1/topup-orders' + query({ status: 'completed', limit: 10 }));
        } catch (e) {
            return; /* the generic balance notice stays */
        }
        const seen = announcedCodes();
        const fresh = ((data && data.orders) || []).filter((o) => o.completed_at &&
            Date.parse(o.completed_at) >= state.startedAt - 60000 && !seen.includes(o.code));
        if (!fresh.length) {
            return;
        }
        sessionStorage.setItem(ANNOUNCED_KEY, JSON.stringify(seen.concat(fresh.map((o) => o.code))));
        state.creditNotice = fresh.map((o) => ({
            code: o.code,
            amount: amountField(o, 'amount'),
            credited: amountField(o, 'credited_amount'),
        }));
        renderCreditNotice();
    }

    function renderCreditNotice() {
        if (!state.creditNotice) {
            return;
        }
        const each = state.creditNotice.map((c) => (c.credited && c.credited !== c.amount
            ? t('credit.mismatch', { code: c.code, credited: formatCny(c.credited),
                                     amount: formatCny(c.amount) })
            : t('credit.done', { code: c.code, credited: formatCny(c.credited || c.amount) })));
        showNotice($('global-notice'), sentences(...each,
                   t('balance.credited', { amount: formatCny(state.balance) })), 'success');
    }

    function startPolling() {
        stopPolling();
        state.pollTimer = setInterval(() => {
            if (!document.hidden) {
                refreshBalance();
                /* The order on screen follows its status while it can still change. */
                const d = state.detail;
                if (d && d.order && (d.order.status === 'pending' || d.order.status === 'processing')) {
                    loadDetail(d.code);
                }
            }
        }, BALANCE_POLL_MS);
    }

    function stopPolling() {
        if (state.pollTimer) {
            clearInterval(state.pollTimer);
            state.pollTimer = null;
        }
    }

    /* ---------- orders awaiting a transfer, on the overview ---------- */

    const AWAITING_MAX = 3;

    /* Pending orders, newest first: a user who comes back finds how to pay them from here. */
    async function loadAwaiting() {
        try {
            const data = await api('GET', '/v1/topup-orders' + query({ status: 'pending', limit: AWAITING_MAX }));
            state.awaiting = { rows: (data && data.orders) || [], more: !!(data && data.next_cursor) };
        } catch (e) {
            state.awaiting = null; /* the orders tab says why, if asked */
        }
        renderAwaiting();
    }

    function renderAwaiting() {
        const a = state.awaiting;
        $('awaiting').hidden = !a || a.rows.length === 0;
        if (!a) {
            return;
        }
        $('awaiting-list').replaceChildren(...a.rows.map((o) => {
            const li = document.createElement('li');
            li.setAttribute('data-code', o.code);
            const what = document.createElement('span');
            what.className = 'awaiting-what';
            what.append(t('awaiting.item', { amount: formatCny(amountField(o, 'amount')), code: o.code }));
            const until = document.createElement('span');
            until.className = 'help';
            until.append(t('awaiting.until') + ' ', timeElement(o.expires_at));
            const link = document.createElement('a');
            link.className = 'btn btn-small btn-primary';
            link.href = '#orders/' + encodeURIComponent(o.code);
            link.textContent = t('orders.howToPay');
            link.setAttribute('aria-label', t('orders.howToPayLabel', { code: o.code }));
            li.append(what, until, link);
            return li;
        }));
    }

    /* ---------- refunds of unused paid credit ---------- */

    async function loadRefunds() {
        try {
            const data = await api('GET', '/v1/refunds' + query({ limit: 3 }));
            state.refunds = { rows: (data && data.refunds) || [], refundable: (data && data.refundable) || {} };
        } catch (e) {
            state.refunds = null;
        }
        renderRefunds();
    }

    function renderRefunds() {
        const r = state.refunds;
        const can = r && amountSign(amountField(r.refundable, 'amount')) > 0;
        $('refund').hidden = !r || (!can && r.rows.length === 0);
        if (!r) {
            return;
        }
        $('refund-form').hidden = !can;
        $('refund-available').textContent = can ? t('refund.available', {
            amount: formatCny(amountField(r.refundable, 'amount')),
            single: formatCny(amountField(r.refundable, 'max_single_refund')),
        }) : t('refund.none');
        $('refund-list').replaceChildren(...r.rows.map((f) => {
            const li = document.createElement('li');
            li.setAttribute('data-refund', f.id);
            li.setAttribute('data-status', f.status || '');
            li.textContent = t('refund.item', { id: f.id, amount: formatCny(amountField(f, 'amount')),
                                                status: hasText('refundStatus.' + f.status)
                                                    ? t('refundStatus.' + f.status) : String(f.status) });
            return li;
        }));
        const n = state.refundNotice;
        showNotice($('refund-notice'), n ? n() : '', 'success');
        ['amount', 'reason'].forEach((k) => {
            const e = state.refundErrors && state.refundErrors[k];
            const el = $('refund-' + k + '-error');
            el.textContent = e ? e() : '';
            el.hidden = !e;
            $('refund-' + k).setAttribute('aria-invalid', e ? 'true' : 'false');
        });
    }

    async function submitRefund(ev) {
        ev.preventDefault();
        const amount = amountCanonical($('refund-amount').value.trim());
        const reason = $('refund-reason').value.trim();
        state.refundErrors = {};
        state.refundNotice = null;
        if (!amount || amountSign(amount) <= 0) {
            state.refundErrors.amount = () => t('error.invalid_amount');
        }
        if (!reason) {
            state.refundErrors.reason = () => t('refund.reasonRequired');
        }
        if (Object.keys(state.refundErrors).length) {
            renderRefunds();
            return;
        }
        const body = { amount: amount, reason: reason };
        const fp = JSON.stringify(body);
        if (!state.refundKey || state.refundKey.fp !== fp) {
            state.refundKey = { fp: fp, key: uuid() }; /* a retry of the same request reuses it */
        }
        $('refund-submit').disabled = true;
        try {
            const f = await api('POST', '/v1/refunds', { body: body, headers: { 'Idempotency-Key': state.refundKey.key } });
            const ref = (f && f.refund) || f;
            state.refundKey = null;
            state.refundNotice = () => t('refund.requested', { id: ref.id, amount: formatCny(amountField(ref, 'amount')) });
            $('refund-amount').value = '';
            $('refund-reason').value = '';
        } catch (e) {
            if (e.status !== 0 && e.status < 500) {
                state.refundKey = null;
            }
            if (e.status !== 401) {
                const field = e.field === 'reason' ? 'reason' : 'amount';
                const err = (e.body && e.body.error) || {};
                state.refundErrors[field] = () => errorText(e.code, {
                    max: formatCny(err.refundable_amount), single: formatCny(err.max_single_refund),
                }, e.message);
            }
        } finally {
            $('refund-submit').disabled = false;
        }
        await loadRefunds();
    }

    /* ---------- payee ---------- */

    function payeeOf(order) {
        if (!order) {
            return null;
        }
        const p = order.payee || {};
        const bank = p.bank_name || order.payee_bank_name;
        const name = p.account_name || order.payee_account_name;
        const number = p.account_number || order.payee_account_number;
        if (!bank && !name && !number) {
            return null;
        }
        return { bank_name: bank || '', account_name: name || '', account_number: number || '' };
    }

    /* The payee account, the presets and the limits come from the service, through the API. */
    async function loadSettings() {
        $('settings-error').hidden = true;
        try {
            const o = await api('GET', '/v1/settings');
            const min = amountCanonical(String(o.min_amount || ''));
            const max = amountCanonical(String(o.max_amount || ''));
            const presets = (Array.isArray(o.presets) ? o.presets : [])
                .map((x) => amountCanonical(String(x))).filter((x) => x !== null);
            if (!min || !max || !Number.isInteger(o.remarks_max_chars) ||
                !Number.isInteger(o.name_max_chars)) {
                throw new ApiError(0, 'bad_settings', 'incomplete settings', null, o);
            }
            Object.assign(limits, {
                loaded: true,
                min: min,
                max: max,
                minFen: canonicalToFen(min),
                maxFen: canonicalToFen(max),
                presets: presets,
                remarksMax: o.remarks_max_chars,
                nameMax: o.name_max_chars,
                supportUrl: typeof o.support_url === 'string' ? o.support_url : '',
            });
            state.payee = payeeOf(o);
            state.settingsError = null;
            buildPresets();
        } catch (e) {
            if (e.status === 401) {
                return;
            }
            state.settingsError = e;
        }
        renderSettings();
    }

    /* One radio per configured preset, then "Custom"; the first preset is chosen. */
    function buildPresets() {
        const wrap = $('presets');
        const before = selectedPreset();
        const items = limits.presets.map((amount) => {
            const label = document.createElement('label');
            label.className = 'preset';
            const input = document.createElement('input');
            input.type = 'radio';
            input.name = 'preset';
            input.value = amount;
            const span = document.createElement('span');
            span.textContent = formatCny(amount).replace(/\.00$/, '');
            label.append(input, span);
            return label;
        });
        const custom = document.createElement('label');
        custom.className = 'preset';
        const ci = document.createElement('input');
        ci.type = 'radio';
        ci.name = 'preset';
        ci.value = 'custom';
        const cs = document.createElement('span');
        cs.setAttribute('data-i18n', 'form.custom');
        cs.textContent = t('form.custom');
        custom.append(ci, cs);
        items.push(custom);
        wrap.replaceChildren(...items);
        wrap.setAttribute('aria-busy', 'false');
        wrap.querySelectorAll('input').forEach((r) => r.addEventListener('change', onPresetChange));
        const keep = before && wrap.querySelector('input[value="' + before + '"]');
        (keep || wrap.querySelector('input')).checked = true;
        $('custom-amount-wrap').hidden = selectedPreset() !== 'custom';
    }

    function renderSettings() {
        const e = state.settingsError;
        $('settings-error').hidden = !e;
        $('settings-error-text').textContent = e ? t('settings.failed', {
            reason: listReason(e),
        }) : '';
        $('submit-order').disabled = !limits.loaded || state.submitting;
        if (limits.loaded) {
            $('custom-help').textContent = t('form.customHelp', {
                min: formatCny(limits.min), max: formatCny(limits.max),
            });
            $('notes-minimum').textContent = t('notes.minimum', { min: formatCny(limits.min) });
            $('notes-minimum').hidden = false;
        }
        renderPayee();
        renderRemarksCount();
    }

    function renderPayee() {
        const p = state.payee;
        const none = limits.loaded ? t('payee.afterSubmit') : '—';
        $('payee-bank').textContent = p ? p.bank_name : none;
        $('payee-name').textContent = p ? p.account_name : none;
        $('payee-number').textContent = p ? p.account_number : none;
    }

    /* ---------- the top-up form ---------- */

    const FIELD_CONTROL = {
        amount: () => (selectedPreset() === 'custom' ? $('custom-amount')
                                                     : document.querySelector('input[name=preset]:checked')),
        channel: () => document.querySelector('input[name=channel]'),
        remitter_name: () => $('remitter-name'),
        remitter_bank: () => $('remitter-bank'),
        remarks: () => $('remarks'),
        agreement_accepted: () => $('agreement'),
    };

    function selectedPreset() {
        const r = document.querySelector('input[name=preset]:checked');
        return r ? r.value : null;
    }

    function codePoints(s) {
        return Array.from(s).length;
    }

    function readForm() {
        const preset = selectedPreset();
        const rawAmount = preset === 'custom' ? $('custom-amount').value.trim() : preset || '';
        return {
            rawAmount: rawAmount,
            amount: amountCanonical(rawAmount),
            remitter_name: $('remitter-name').value.trim(),
            remitter_bank: $('remitter-bank').value.trim(),
            remarks: $('remarks').value.trim(),
            agreement_accepted: $('agreement').checked,
        };
    }

    /* C0 controls, DEL and C1 controls: the API refuses them in text fields. */
    const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

    function checkText(errs, field, value, required) {
        if (required && !value) {
            errs.push({ field: field, code: field + '_required' });
        } else if (field !== 'remarks' && codePoints(value) > limits.nameMax) {
            errs.push({ field: field, code: field + '_too_long' });
        } else if (field === 'remarks' && codePoints(value) > limits.remarksMax) {
            errs.push({ field: field, code: 'remarks_too_long' });
        } else if (CONTROL_CHARS.test(value)) {
            errs.push({ field: field, code: 'invalid_characters' });
        }
    }

    /* Mirrors the API's validation codes (services/order-intake/README.md); the API decides. */
    function validate(f) {
        const errs = [];
        if (!limits.loaded) {
            return [{ field: null, code: 'settings' }];
        }
        if (f.amount === null) {
            errs.push({ field: 'amount', code: 'invalid_amount' });
        } else if (canonicalToFen(f.amount) < limits.minFen) {
            errs.push({ field: 'amount', code: 'amount_below_minimum' });
        } else if (canonicalToFen(f.amount) > limits.maxFen) {
            errs.push({ field: 'amount', code: 'amount_above_maximum' });
        }
        checkText(errs, 'remitter_name', f.remitter_name, true);
        checkText(errs, 'remitter_bank', f.remitter_bank, true);
        checkText(errs, 'remarks', f.remarks, false);
        if (!f.agreement_accepted) {
            errs.push({ field: 'agreement_accepted', code: 'agreement_required' });
        }
        return errs;
    }

    function errorElement(field) {
        return $(field + '-error');
    }

    function setFieldError(field, code, serverMessage) {
        state.fieldErrors[field] = { code: code, message: serverMessage || null };
        renderFieldError(field);
    }

    function renderFieldError(field) {
        const el = errorElement(field);
        const e = state.fieldErrors[field];
        if (!el) {
            return;
        }
        el.textContent = e ? errorText(e.code, null, e.message) : '';
        el.hidden = !e;
        el.setAttribute('data-code', e ? e.code : '');
        const control = FIELD_CONTROL[field] && FIELD_CONTROL[field]();
        if (control) {
            control.setAttribute('aria-invalid', e ? 'true' : 'false');
        }
        if (field === 'amount') {
            $('presets').classList.toggle('invalid', !!e && selectedPreset() !== 'custom');
        }
    }

    function clearFieldError(field) {
        if (state.fieldErrors[field]) {
            delete state.fieldErrors[field];
            renderFieldError(field);
        }
        if (Object.keys(state.fieldErrors).length === 0 && state.formError === 'form.fixErrors') {
            setFormError(null);
        }
    }

    function clearAllErrors() {
        Object.keys(state.fieldErrors).forEach((f) => {
            delete state.fieldErrors[f];
            renderFieldError(f);
        });
        setFormError(null);
    }

    /* The form-level alert: a message id, or {code, message} from the API. */
    function setFormError(err) {
        state.formError = err;
        renderFormError();
    }

    function renderFormError() {
        const err = state.formError;
        let text = '';
        if (typeof err === 'string') {
            text = t(err);
        } else if (err) {
            text = errorText(err.code, null, err.message);
        }
        showNotice($('form-error'), text, 'error');
    }

    function focusField(field) {
        const c = FIELD_CONTROL[field] && FIELD_CONTROL[field]();
        if (c) {
            c.focus();
        }
    }

    async function submitOrder(ev) {
        ev.preventDefault();
        if (state.submitting) {
            return;
        }
        clearAllErrors();
        const f = readForm();
        const errs = validate(f);
        if (errs.length && errs[0].field === null) {
            renderSettings();
            return;
        }
        if (errs.length) {
            errs.forEach((e) => setFieldError(e.field, e.code));
            setFormError('form.fixErrors');
            focusField(errs[0].field);
            return;
        }
        const body = {
            amount: f.amount,
            channel: 'bank_transfer',
            remitter_name: f.remitter_name,
            remitter_bank: f.remitter_bank,
            remarks: f.remarks,
            agreement_accepted: true,
        };
        const fingerprint = JSON.stringify(body);
        if (!state.pendingSubmit || state.pendingSubmit.fingerprint !== fingerprint) {
            state.pendingSubmit = { fingerprint: fingerprint, key: uuid() };
        }
        setSubmitting(true);
        try {
            const data = await api('POST', '/v1/topup-orders', {
                body: body,
                headers: { 'Idempotency-Key': state.pendingSubmit.key },
            });
            state.pendingSubmit = null;
            resetForm();
            showCreated((data && data.order) || data);
        } catch (e) {
            if (e.status === 0 || e.status >= 500) {
                /* Unknown outcome: keep the key so that submitting again cannot create a twin. */
                setFormError({ code: e.status === 0 ? 'network' : e.code, message: e.message });
            } else {
                state.pendingSubmit = null;
                if (e.status === 401) {
                    return;
                }
                if (e.field && errorElement(e.field)) {
                    setFieldError(e.field, e.code, e.message);
                    setFormError('form.fixErrors');
                    focusField(e.field);
                } else {
                    setFormError({ code: e.code, message: e.message });
                }
            }
        } finally {
            setSubmitting(false);
        }
    }

    function setSubmitting(on) {
        state.submitting = on;
        const b = $('submit-order');
        b.disabled = on || !limits.loaded;
        b.textContent = t(on ? 'form.submitting' : 'form.submit');
        $('topup-form').setAttribute('aria-busy', on ? 'true' : 'false');
    }

    function resetForm() {
        const first = document.querySelector('input[name=preset]');
        if (first) {
            first.checked = true;
        }
        $('custom-amount-wrap').hidden = true;
        $('custom-amount').value = '';
        $('remarks').value = '';
        $('agreement').checked = false;
        renderRemarksCount();
        /* The remitter name and bank usually stay the same for the next order: keep them. */
    }

    function onPresetChange() {
        const custom = selectedPreset() === 'custom';
        $('custom-amount-wrap').hidden = !custom;
        clearFieldError('amount');
        if (custom) {
            $('custom-amount').focus();
        }
    }

    function renderRemarksCount() {
        const n = codePoints($('remarks').value.trim());
        const el = $('remarks-count');
        if (limits.remarksMax === null) {
            el.textContent = '';
            return;
        }
        el.textContent = t('form.remarksCount', { count: n, max: limits.remarksMax });
        el.classList.toggle('over', n > limits.remarksMax);
    }

    /* ---------- one order: #orders/CODE ---------- */

    function statusBadge(status) {
        const span = document.createElement('span');
        const known = STATUSES.includes(status);
        span.className = 'badge badge-' + (known ? status : 'unknown');
        span.textContent = known ? t('status.' + status) : String(status || '—');
        span.setAttribute('data-status', status || '');
        return span;
    }

    /* After a create: the order's own view, which a reload or a bookmark brings back. */
    function showCreated(order) {
        state.detail = { code: order.code, order: order, notice: null, created: true };
        location.hash = '#orders/' + order.code; /* route() opens it */
    }

    function openDetail(code) {
        if (!state.detail || state.detail.code !== code) {
            state.detail = { code: code, order: null, notice: null, created: false };
        }
        renderDetail();
        $('order-detail').focus();
        loadDetail(code);
    }

    async function loadDetail(code) {
        try {
            const o = await api('GET', '/v1/topup-orders/' + encodeURIComponent(code));
            const d = state.detail;
            if (!d || d.code !== code) {
                return;
            }
            d.order = o;
            d.loadedAt = new Date();
            d.error = null;
        } catch (e) {
            const d = state.detail;
            if (!d || d.code !== code || e.status === 401) {
                return;
            }
            d.error = e;
        }
        renderDetail();
    }

    function supportHref(code) {
        const u = limits.supportUrl || '';
        if (!u) {
            return '';
        }
        if (u.includes('{code}')) {
            return u.split('{code}').join(encodeURIComponent(code));
        }
        return u + (u.includes('?') ? '&' : '?') + 'order=' + encodeURIComponent(code);
    }

    /* The steps an order goes through, each done, current, to come, or where it stopped. */
    function timelineSteps(o) {
        const st = o.status;
        const steps = [{ key: 'created', state: 'done', time: o.created_at }];
        if (st === 'cancelled' || st === 'expired') {
            steps.push({ key: 'awaiting', state: 'done' });
            steps.push({ key: st, state: 'stopped', time: o[st + '_at'] });
            return steps;
        }
        steps.push({ key: 'awaiting', state: st === 'pending' ? 'current' : 'done',
                     until: st === 'pending' ? o.expires_at : null });
        steps.push({ key: 'received', state: st === 'pending' ? 'todo' : 'done', time: o.matched_at });
        steps.push({ key: 'credited',
                     state: st === 'completed' ? 'done' : st === 'processing' ? 'current' : 'todo',
                     time: o.completed_at });
        return steps;
    }

    function renderTimeline(o) {
        const items = timelineSteps(o).map((s) => {
            const li = document.createElement('li');
            li.className = 'step step-' + s.state;
            li.setAttribute('data-step', s.key);
            li.setAttribute('data-state', s.state);
            if (s.state === 'current') {
                li.setAttribute('aria-current', 'step');
            }
            const name = document.createElement('span');
            name.className = 'step-name';
            name.textContent = t('step.' + s.key);
            const hidden = document.createElement('span');
            hidden.className = 'visually-hidden';
            hidden.textContent = ' (' + t('stepState.' + s.state) + ')';
            li.append(name, hidden);
            if (s.time) {
                li.append(' ', timeElement(s.time));
            } else if (s.until) {
                const u = document.createElement('span');
                u.className = 'help';
                u.append(t('step.until') + ' ', timeElement(s.until));
                li.append(' ', u);
            }
            return li;
        });
        $('detail-timeline').replaceChildren(...items);
    }

    function summaryText(o) {
        switch (o.status) {
        case 'pending':
            return t('detail.sumPending', { amount: formatCny(amountField(o, 'amount')) });
        case 'processing':
            return t('detail.sumProcessing');
        case 'completed':
            if (o.amount_mismatch) {
                return t('detail.sumCompletedMismatch', {
                    credited: formatCny(amountField(o, 'credited_amount')),
                });
            }
            return t('detail.sumCompleted', {
                credited: formatCny(amountField(o, 'credited_amount') || amountField(o, 'amount')),
            });
        case 'cancelled':
            return t('detail.sumCancelled');
        case 'expired':
            return t('detail.sumExpired');
        default:
            return '';
        }
    }

    /* A short or over payment: what arrived, what was credited, what the user can do. */
    function renderMismatch(o) {
        const box = $('detail-mismatch');
        const ordered = amountField(o, 'amount');
        const credited = amountField(o, 'credited_amount');
        const show = !!(o.amount_mismatch && credited && ordered);
        box.hidden = !show;
        if (!show) {
            return;
        }
        const diff = canonicalToFen(credited) - canonicalToFen(ordered);
        const short = diff < 0n;
        const gap = formatCny(fenToAmount(short ? -diff : diff));
        box.setAttribute('data-kind', short ? 'short' : 'over');
        $('mismatch-title').textContent = t(short ? 'mismatch.shortTitle' : 'mismatch.overTitle');
        $('mismatch-ordered').textContent = formatCny(ordered);
        $('mismatch-arrived').textContent = formatCny(credited);
        $('mismatch-credited').textContent = formatCny(credited);
        $('mismatch-todo').textContent = t(short ? 'mismatch.shortTodo' : 'mismatch.overTodo',
                                           { gap: gap, code: o.code, min: formatCny(limits.min) });
        const a = $('mismatch-support');
        const href = supportHref(o.code);
        a.hidden = !href;
        a.href = href || '#';
        a.textContent = t('mismatch.support', { code: o.code });
    }

    /* The user's "I have paid" claim (filed through the API) and where support is with it. */
    function renderClaim(o) {
        const c = o.claim && typeof o.claim === 'object' ? o.claim : null;
        $('detail-claim').hidden = !c;
        if (!c) {
            return;
        }
        $('claim-stated').replaceChildren(t('claim.stated', {
            amount: formatCny(amountField(c, 'amount')), date: String(c.transfer_date || ''),
            payer: String(c.payer_name || ''),
        }), ' ', timeElement(c.filed_at));
        $('detail-claim').setAttribute('data-claim', String(c.status || ''));
        $('claim-state').textContent = t(c.status === 'matched' ? 'claim.matched' : 'claim.open');
    }

    /* While pending: every value the bank asks for, each with its own copy button. */
    function renderPay(o) {
        const box = $('detail-pay');
        const p = o.status === 'pending' ? payeeOf(o) : null;
        box.hidden = !p;
        if (!p) {
            $('pay-fields').replaceChildren();
            return;
        }
        /*
         * The page's own sentence, not the API's instructions: it points at the fields below and
         * names the bank's remark field (附言 / 备注) the same way everywhere on the page.
         */
        $('detail-instruction').textContent =
            t('result.instruction', { amount: formatCny(amountField(o, 'amount')), code: o.code });
        const fields = [
            ['account_name', p.account_name, p.account_name],
            ['bank_name', p.bank_name, p.bank_name],
            ['account_number', p.account_number, p.account_number.replace(/\s+/g, '')],
            ['amount', formatCny(amountField(o, 'amount')), amountField(o, 'amount')],
            ['code', o.code, o.code],
        ];
        $('pay-fields').replaceChildren(...fields.map(([key, shown, copied]) => {
            const row = document.createElement('div');
            row.className = 'pay-field pay-' + key;
            row.setAttribute('data-field', key);
            const dt = document.createElement('dt');
            dt.textContent = t('pay.' + key);
            const dd = document.createElement('dd');
            const v = document.createElement('span');
            v.className = 'pay-value' + (key === 'amount' ? '' : ' mono');
            v.textContent = shown;
            const b = document.createElement('button');
            b.type = 'button';
            b.className = 'btn btn-small btn-ghost copy';
            b.textContent = t('result.copy');
            b.setAttribute('aria-label', t('pay.copyLabel', { what: t('pay.' + key) }));
            b.addEventListener('click', () => copyText(copied, t('pay.' + key)));
            dd.append(v, b);
            if (key === 'code') {
                const hint = document.createElement('p');
                hint.className = 'help';
                hint.textContent = t('pay.codeHint');
                dd.append(hint);
            }
            row.append(dt, dd);
            return row;
        }));
    }

    function renderDetail() {
        const d = state.detail;
        if (!d) {
            return;
        }
        const o = d.order;
        $('detail-title').textContent = t(d.created && o && o.status === 'pending'
            ? 'detail.createdTitle' : 'detail.title', { code: d.code });
        let notice = null;
        if (d.error) {
            notice = d.error.status === 404
                ? { kind: 'error', text: t('detail.notFound', { code: d.code }) }
                : { kind: 'error', text: sentences(t('detail.loadFailed', { reason: listReason(d.error) }),
                    o && d.loadedAt ? t('list.staleRows', { time: formatTime(d.loadedAt.toISOString()) }) : '') };
        } else if (d.notice) {
            notice = d.notice;
        }
        showNotice($('detail-notice'), notice ? (typeof notice.text === 'function' ? notice.text() : notice.text) : '',
                   notice ? notice.kind : 'info');
        $('order-detail').classList.toggle('stale', !!(d.error && o));
        const parts = ['detail-status', 'detail-summary', 'detail-timeline', 'detail-remitter',
                       'detail-bank', 'detail-note'];
        if (!o) {
            parts.forEach((id) => $(id).replaceChildren());
            $('detail-pay').hidden = true;
            $('detail-mismatch').hidden = true;
            $('detail-claim').hidden = true;
            $('detail-cancel').hidden = true;
            return;
        }
        $('detail-status').replaceChildren(statusBadge(o.status));
        $('detail-summary').textContent = summaryText(o);
        renderMismatch(o);
        renderClaim(o);
        renderPay(o);
        renderTimeline(o);
        $('detail-remitter').textContent = o.remitter_name || '—';
        $('detail-bank').textContent = o.remitter_bank || '—';
        $('detail-note').textContent = o.remarks || '—';
        $('detail-cancel').hidden = o.status !== 'pending';
    }

    async function copyText(value, what) {
        let ok = false;
        try {
            await navigator.clipboard.writeText(value);
            ok = true;
        } catch (e) {
            const ta = document.createElement('textarea');
            ta.value = value;
            ta.setAttribute('readonly', '');
            ta.className = 'offscreen';
            document.body.appendChild(ta);
            ta.select();
            try {
                ok = document.execCommand('copy');
            } catch (e2) {
                ok = false;
            }
            ta.remove();
        }
        $('copy-status').textContent = t(ok ? 'pay.copied' : 'result.copyFailed', { what: what });
        clearTimeout(state.copyTimer);
        state.copyTimer = setTimeout(() => {
            $('copy-status').textContent = '';
        }, 4000);
    }

    /* Why a list or an order could not be loaded, in the user's words (not the form's). */
    function listReason(e) {
        if (e.status === 0 && e.code === 'network') {
            return t('list.reasonNetwork');
        }
        if (e.status === 503 || e.code === 'unavailable') {
            return t('list.reasonUnavailable');
        }
        if (e.status >= 500) {
            return t('list.reasonServer');
        }
        return t('list.reasonOther', { code: e.code || e.status });
    }

    /* ---------- lists with cursor pagination ---------- */

    function resetLists() {
        ['orders', 'flows'].forEach((k) => {
            Object.assign(state[k], { cursors: [null], page: 0, next: null, rows: [], notice: null,
                                      stale: false, shownPage: 0, loadedAt: null });
        });
    }

    function renderPager(prefix, list) {
        $(prefix + '-prev').disabled = list.page === 0;
        $(prefix + '-next').disabled = !list.next;
        $(prefix + '-page').textContent = t('common.page', { page: list.page + 1 });
    }

    function emptyRow(cols, key) {
        const tr = document.createElement('tr');
        const td = document.createElement('td');
        td.colSpan = cols;
        td.className = 'empty';
        td.textContent = t(key);
        tr.appendChild(td);
        return tr;
    }

    function cell(tr, content, cls) {
        const td = document.createElement('td');
        if (cls) {
            td.className = cls;
        }
        if (content instanceof Node) {
            td.appendChild(content);
        } else {
            td.textContent = content === null || content === undefined ? '' : String(content);
        }
        tr.appendChild(td);
        return td;
    }

    /*
     * On narrow screens a row is a card and each cell shows its column's name (CSS reads
     * data-label); the header row stays for screen readers.
     */
    function labelCells(tr, keys) {
        Array.from(tr.children).forEach((td, i) => {
            if (keys[i]) {
                td.setAttribute('data-label', t(keys[i]));
            }
        });
    }

    function listLoaded(list, rows, next) {
        list.rows = rows;
        list.next = next;
        list.shownPage = list.page;
        list.loadedAt = new Date();
        list.stale = false;
        if (list.notice && list.notice.kind === 'error') {
            list.notice = null;
        }
    }

    /*
     * A list that failed to load says so in its own words (not the form's), and the rows still
     * on screen from before are marked as possibly out of date; the page shown stays theirs.
     */
    function listFailed(list, key, e) {
        list.page = list.shownPage || 0;
        list.stale = list.rows.length > 0;
        const at = list.loadedAt;
        list.notice = {
            kind: 'error',
            text: () => sentences(t(key, { reason: listReason(e) }),
                list.stale && at ? t('list.staleRows', { time: formatTime(at.toISOString()) }) : ''),
        };
    }

    /* Rows kept from an earlier load after a failed one: faded, each with a visible mark. */
    function markStale(prefix, list, rows) {
        $(prefix + '-table').classList.toggle('stale', !!list.stale);
        $(prefix + '-table').setAttribute('data-stale', list.stale ? 'true' : 'false');
        if (!list.stale) {
            return;
        }
        rows.forEach((tr) => {
            tr.setAttribute('data-stale', 'true');
            const tag = document.createElement('span');
            tag.className = 'stale-tag';
            tag.textContent = t('list.staleTag');
            tr.firstChild.append(' ', tag);
        });
    }

    function renderListNotice(prefix, list) {
        const n = list.notice;
        showNotice($(prefix + '-notice'), n ? n.text() : '', n ? n.kind : 'info');
    }

    /* ---------- orders ---------- */

    async function loadOrders() {
        const list = state.orders;
        const seq = ++list.seq;
        $('orders-table').setAttribute('aria-busy', 'true');
        try {
            const data = await api('GET', '/v1/topup-orders' + query({
                limit: PAGE_SIZE,
                cursor: list.cursors[list.page],
                status: $('orders-status').value,
            }));
            if (seq !== list.seq) {
                return;
            }
            listLoaded(list, (data && data.orders) || [], (data && data.next_cursor) || null);
        } catch (e) {
            if (seq !== list.seq || e.status === 401) {
                return;
            }
            listFailed(list, 'orders.loadFailed', e);
        } finally {
            if (seq === list.seq) {
                $('orders-table').setAttribute('aria-busy', 'false');
            }
        }
        renderOrders();
    }

    function renderOrders() {
        const list = state.orders;
        const body = $('orders-body');
        const rows = list.rows.map((o) => {
            const tr = document.createElement('tr');
            const code = o.code;
            tr.setAttribute('data-code', code);
            /* The code opens the order's own view (#orders/CODE): status and, while pending, how to pay. */
            const link = document.createElement('a');
            link.href = '#orders/' + encodeURIComponent(code);
            link.className = 'mono order-link';
            link.textContent = code;
            link.setAttribute('aria-label', t('orders.openLabel', { code: code }));
            cell(tr, link);
            const amount = amountField(o, 'amount');
            const amountCell = cell(tr, formatCny(amount), 'num');
            if (o.amount_mismatch) {
                const credited = amountField(o, 'credited_amount');
                const note = document.createElement('div');
                note.className = 'help';
                note.textContent = credited ? t('orders.mismatchAmount', { credited: formatCny(credited) })
                                            : t('orders.mismatch');
                amountCell.appendChild(note);
            }
            cell(tr, statusBadge(o.status));
            cell(tr, o.remitter_name || '');
            cell(tr, timeElement(o.created_at));
            /* The transfer deadline matters only while the order waits for the transfer. */
            cell(tr, o.status === 'pending' ? timeElement(o.expires_at) : '—');
            const actions = cell(tr, '', 'actions');
            labelCells(tr, ['orders.reference', 'orders.amount', 'orders.status', 'orders.remitter',
                            'orders.created', 'orders.expires', null]);
            if (o.status === 'pending') {
                const how = document.createElement('a');
                how.href = '#orders/' + encodeURIComponent(code);
                how.className = 'btn btn-small btn-ghost';
                how.textContent = t('orders.howToPay');
                how.setAttribute('aria-label', t('orders.howToPayLabel', { code: code }));
                actions.appendChild(how);
                const b = document.createElement('button');
                b.type = 'button';
                b.className = 'btn btn-small btn-danger-ghost';
                b.textContent = t('orders.cancel');
                b.setAttribute('aria-label', t('orders.cancelLabel', { code: code }));
                b.addEventListener('click', () => askCancel(o));
                actions.appendChild(b);
            }
            return tr;
        });
        markStale('orders', list, rows);
        body.replaceChildren(...(rows.length ? rows : [emptyRow(7, 'orders.empty')]));
        renderPager('orders', list);
        renderListNotice('orders', list);
    }

    function askCancel(order) {
        const code = order.code;
        state.cancelTarget = order;
        $('cancel-text').textContent =
            t('cancel.text', { code: code, amount: formatCny(amountField(order, 'amount')) });
        const dlg = $('cancel-dialog');
        dlg.returnValue = '';
        dlg.showModal();
        $('cancel-keep').focus();
    }

    async function onCancelDialogClose() {
        const order = state.cancelTarget;
        state.cancelTarget = null;
        if (!order || $('cancel-dialog').returnValue !== 'confirm') {
            return;
        }
        const code = order.code;
        const list = state.orders;
        let notice;
        try {
            await api('POST', '/v1/topup-orders/' + encodeURIComponent(code) + '/cancel', { body: {} });
            notice = { kind: 'success', text: () => t('orders.cancelled', { code: code }) };
        } catch (e) {
            if (e.status === 401) {
                return;
            }
            if (e.status === 409) {
                const status = currentStatusOf(e.body);
                const label = () => (STATUSES.includes(status) ? t('status.' + status) : status || '?');
                let key = 'orders.notPending';
                if (status === 'processing') {
                    key = 'orders.notPendingProcessing';
                } else if (status === 'completed') {
                    key = 'orders.notPendingCompleted';
                }
                notice = { kind: 'warn', text: () => t(key, { code: code, status: label() }) };
            } else {
                notice = { kind: 'error', text: () => errorText(e.code, null, e.message) };
            }
        }
        /* The answer goes where the user asked: the order's own view, or the list. */
        if (state.detail && state.detail.code === code) {
            state.detail.notice = notice;
            await loadDetail(code);
        } else {
            list.notice = notice;
            renderListNotice('orders', list);
            await loadOrders();
        }
        refreshBalance();
    }

    /* The 409 order_not_pending names the order's current status in error.status. */
    function currentStatusOf(body) {
        if (!body) {
            return null;
        }
        const e = body.error || {};
        return e.status || null;
    }

    /* ---------- account flows ---------- */

    async function loadFlows() {
        const list = state.flows;
        const seq = ++list.seq;
        $('flows-table').setAttribute('aria-busy', 'true');
        try {
            const data = await api('GET', '/v1/account-flows' + query({
                type: $('flows-type').value,
                limit: PAGE_SIZE,
                cursor: list.cursors[list.page],
            }));
            if (seq !== list.seq) {
                return;
            }
            listLoaded(list, (data && data.flows) || [], (data && data.next_cursor) || null);
        } catch (e) {
            if (seq !== list.seq || e.status === 401) {
                return;
            }
            listFailed(list, 'flows.loadFailed', e);
        } finally {
            if (seq === list.seq) {
                $('flows-table').setAttribute('aria-busy', 'false');
            }
        }
        renderFlows();
    }

    function renderFlows() {
        const list = state.flows;
        const rows = list.rows.map((f) => {
            const tr = document.createElement('tr');
            const type = f.type;
            tr.setAttribute('data-type', type || '');
            cell(tr, timeElement(f.occurred_at || f.created_at));
            const typeSpan = document.createElement('span');
            typeSpan.className = 'flow-type flow-' + (FLOW_TYPES.includes(type) ? type : 'unknown');
            typeSpan.textContent = FLOW_TYPES.includes(type) ? t('flowType.' + type) : String(type);
            cell(tr, typeSpan);
            const amount = amountField(f, 'amount');
            const sign = amountSign(amount);
            const amountSpan = document.createElement('span');
            amountSpan.className = sign > 0 ? 'amount-pos' : sign < 0 ? 'amount-neg' : '';
            amountSpan.textContent = formatCny(amount, true);
            amountSpan.setAttribute('data-amount', amount || '');
            cell(tr, amountSpan, 'num');
            cell(tr, formatCny(amountField(f, 'balance_after')), 'num');
            cell(tr, f.reference || '', 'mono');
            labelCells(tr, ['flows.time', 'flows.type', 'flows.amount', 'flows.balanceAfter',
                            'flows.reference']);
            return tr;
        });
        markStale('flows', list, rows);
        $('flows-body').replaceChildren(...(rows.length ? rows : [emptyRow(5, 'flows.empty')]));
        renderPager('flows', list);
        renderListNotice('flows', list);
    }

    function pageNext(name, load) {
        const list = state[name];
        if (!list.next) {
            return;
        }
        list.cursors[list.page + 1] = list.next;
        list.page += 1;
        list.notice = null;
        load();
    }

    function pagePrev(name, load) {
        const list = state[name];
        if (list.page === 0) {
            return;
        }
        list.page -= 1;
        list.notice = null;
        load();
    }

    function resetList(name, load) {
        Object.assign(state[name], { cursors: [null], page: 0, next: null, notice: null });
        load();
    }

    /* ---------- everything that shows text ---------- */

    function renderAll() {
        renderBalance();
        renderSettings();
        renderDetail();
        renderAwaiting();
        renderRefunds();
        Object.keys(state.fieldErrors).forEach(renderFieldError);
        renderFormError();
        renderRemarksCount();
        if (state.tokenError) {
            setTokenError(state.tokenError);
        }
        if (state.signinNotice && !$('signin').hidden) {
            showNotice($('signin-notice'), t(state.signinNotice), 'warn');
        }
        $('submit-order').textContent = t(state.submitting ? 'form.submitting' : 'form.submit');
        if (!$('app').hidden) {
            if (limits.loaded) {
                buildPresets();
            }
            renderOrders();
            renderFlows();
        }
        if (state.creditNotice) {
            renderCreditNotice();
        } else {
            $('global-notice').hidden = true;
        }
        document.querySelectorAll('.tz-note').forEach((el) => {
            el.textContent = t('common.timeZone', { zone: timeZoneName() });
        });
    }

    function init() {
        state.lang = detectLang();
        applyStaticText();

        $('lang-select').addEventListener('change', (e) => setLang(e.target.value));
        $('signin-form').addEventListener('submit', signIn);
        $('token-input').addEventListener('input', () => setTokenError(null));
        $('sign-out').addEventListener('click', signOut);

        TABS.forEach((n) => {
            $('tab-' + n).addEventListener('click', () => selectTab(n, false));
            $('tab-' + n).addEventListener('keydown', tabKeydown);
        });

        $('balance-refresh').addEventListener('click', refreshBalance);
        document.addEventListener('visibilitychange', () => {
            if (!document.hidden && state.token) {
                refreshBalance();
            }
        });

        $('custom-amount').addEventListener('input', () => clearFieldError('amount'));
        $('remitter-name').addEventListener('input', () => clearFieldError('remitter_name'));
        $('remitter-bank').addEventListener('input', () => clearFieldError('remitter_bank'));
        $('remarks').addEventListener('input', () => {
            clearFieldError('remarks');
            renderRemarksCount();
        });
        $('agreement').addEventListener('change', () => clearFieldError('agreement_accepted'));
        $('agreement-open').addEventListener('click', () => $('agreement-dialog').showModal());
        $('topup-form').addEventListener('submit', submitOrder);
        $('settings-retry').addEventListener('click', loadSettings);
        $('refund-form').addEventListener('submit', submitRefund);
        window.addEventListener('hashchange', route);
        $('detail-cancel').addEventListener('click', () => {
            const d = state.detail;
            if (d && d.order && d.order.status === 'pending') {
                askCancel(d.order);
            }
        });

        $('orders-status').addEventListener('change', () => resetList('orders', loadOrders));
        $('orders-refresh').addEventListener('click', () => loadOrders());
        $('orders-next').addEventListener('click', () => pageNext('orders', loadOrders));
        $('orders-prev').addEventListener('click', () => pagePrev('orders', loadOrders));
        $('cancel-dialog').addEventListener('close', onCancelDialogClose);

        $('flows-type').addEventListener('change', () => resetList('flows', loadFlows));
        $('flows-refresh').addEventListener('click', () => loadFlows());
        $('flows-next').addEventListener('click', () => pageNext('flows', loadFlows));
        $('flows-prev').addEventListener('click', () => pagePrev('flows', loadFlows));

        renderRemarksCount();
        renderPayee();
        document.querySelectorAll('.tz-note').forEach((el) => {
            el.textContent = t('common.timeZone', { zone: timeZoneName() });
        });

        const saved = sessionStorage.getItem(TOKEN_KEY);
        if (saved) {
            state.token = saved;
            enterApp(null);
        } else {
            showSignIn(null);
        }
    }

    init();
})();
