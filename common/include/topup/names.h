/*
 * Remitter-name normalisation for matching rule 2 (SPEC "Reconciliation").
 *
 * Steps: Unicode NFKC (full-width -> half-width, compatibility forms), case folding, a known
 * payment-intermediary prefix removed ("支付宝-张三" -> "张三", "财付通：李四" -> "李四",
 * "ALIPAY-Wang Wei" -> "wangwei"), then every space, punctuation, symbol and control character
 * removed. Examples:
 *   "张 三"            -> "张三"         "ＺＨＡＮＧ　Ｓａｎ" -> "zhangsan"
 *   "Zhang-San."        -> "zhangsan"     "阿依古丽·买买提"   -> "阿依古丽买买提"
 *   "支付宝-张三"       -> "张三"         "财付通"            -> ""  (intermediary only: no name)
 */
#ifndef TOPUP_NAMES_H
#define TOPUP_NAMES_H

#include <stddef.h>
#include "topup/error.h"

#define NAMES_NORM_MAX 256 /* bytes of a normalised name, NUL included */

/*
 * Writes the normalised form of name (len bytes of UTF-8) into out (NAMES_NORM_MAX bytes).
 * TP_INVALID when name is not valid UTF-8 or the result does not fit; out is "" then.
 * An empty result means "no usable name": rule 2 must not match on it.
 */
enum tp_status names_normalize(const char *name, size_t len, char out[NAMES_NORM_MAX],
                               struct tp_error *err) TP_MUST_CHECK;

#endif
