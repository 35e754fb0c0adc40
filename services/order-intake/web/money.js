// Money on the Top Up page: the API's decimal strings, parsed and formatted with string and
// BigInt operations only, never JavaScript floating point.
'use strict';

(function (root) {
    /* Parses what the user typed into the API's form "123.40", or null when it is not an amount. */
    function amountCanonical(input) {
        const m = /^(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?$/.exec(input);
        if (!m) {
            return null;
        }
        return m[1] + '.' + (m[2] || '').padEnd(2, '0');
    }

    /* "123.40" -> 12340n, exact (BigInt integer fen). */
    function canonicalToFen(canonical) {
        return BigInt(canonical.replace('.', ''));
    }

    /*
     * Formats an API decimal string ("-1234.5", "100.00", "+3") as "¥1,234.50" with string
     * operations only. withSign puts "+" on positive amounts. Anything unexpected is shown as is.
     */
    function formatCny(value, withSign) {
        if (value === null || value === undefined) {
            return '—';
        }
        const s = String(value).trim();
        const m = /^([+-]?)([0-9]+)(?:\.([0-9]+))?$/.exec(s);
        if (!m) {
            return s;
        }
        let intPart = m[2].replace(/^0+(?=[0-9])/, '');
        let frac = (m[3] || '').padEnd(2, '0');
        if (frac.length > 2 && /^0+$/.test(frac.slice(2))) {
            frac = frac.slice(0, 2);
        }
        const isZero = /^0+$/.test(intPart) && /^0+$/.test(frac);
        intPart = intPart.replace(/\B(?=([0-9]{3})+(?![0-9]))/g, ',');
        let sign = '';
        if (!isZero && m[1] === '-') {
            sign = '−'; /* U+2212, the minus sign */
        } else if (!isZero && withSign) {
            sign = '+';
        }
        return sign + '¥' + intPart + '.' + frac;
    }

    /* 12340n -> "123.40", -5n -> "-0.05": the inverse of canonicalToFen, exact. */
    function fenToAmount(fen) {
        const neg = fen < 0n;
        const digits = (neg ? -fen : fen).toString().padStart(3, '0');
        return (neg ? '-' : '') + digits.slice(0, -2) + '.' + digits.slice(-2);
    }

    function amountSign(value) {
        const s = String(value === null || value === undefined ? '' : value).trim();
        if (/^-/.test(s) && /[1-9]/.test(s)) {
            return -1;
        }
        return /[1-9]/.test(s) ? 1 : 0;
    }

    /* An amount field of an API object: the decimal string, or null when absent. */
    function amountField(obj, name) {
        return obj && typeof obj[name] === 'string' ? obj[name] : null;
    }

    const api = { amountCanonical, canonicalToFen, fenToAmount, formatCny, amountSign, amountField };
    if (typeof module !== 'undefined' && module.exports) {
        module.exports = api;
    } else {
        root.TOPUP_MONEY = api;
    }
})(typeof window !== 'undefined' ? window : globalThis);
