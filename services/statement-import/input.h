/* Reading a statement file: raw bytes (file or memory) and decoded UTF-8 lines with encodings. */
#ifndef STATEMENT_IMPORT_INPUT_H
#define STATEMENT_IMPORT_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "topup/error.h"

/* Raw read size; also the unit of progress reports. */
#define INPUT_CHUNK_BYTES (256 * 1024)
/* Longest line (after decoding). A longer one stops the parse: no statement has such lines. */
#define INPUT_LINE_MAX (64 * 1024)

struct input;

/* Opens path for reading. Caller owns the result: input_free(). NULL with err on failure. */
struct input *input_open_file(const char *path, struct tp_error *err);

/*
 * Reads the whole file once, from the first byte to its end, into a private copy (an unlinked
 * file in spool_dir that nobody else can open) and takes the SHA-256 of exactly those bytes
 * (hex into sha256_hex, 65 bytes). From then on every pass reads the copy: a file changed, or
 * still being written, after this point cannot be parsed or published as anything but what was
 * hashed. A file whose size or modification time changed while it was copied is refused
 * (TP_INVALID: still being written). TP_FATAL when the copy cannot be made (err says why).
 */
enum tp_status input_snapshot(struct input *in, const char *spool_dir, char sha256_hex[65],
                              struct tp_error *err) TP_MUST_CHECK;

/* Wraps a memory buffer (borrowed, must outlive the input). */
struct input *input_open_mem(const void *data, size_t len);

void input_free(struct input *in);

/* Called with every raw chunk read (SHA-256, progress). */
typedef void input_raw_fn(void *ctx, const void *buf, size_t n);
void input_set_hook(struct input *in, input_raw_fn *fn, void *ctx);

/* Starts reading from the first byte again (the next pass over the same open file). */
enum tp_status input_rewind(struct input *in, struct tp_error *err) TP_MUST_CHECK;

/* Reads up to cap raw bytes: > 0 bytes read, 0 at end of file, -1 on an I/O error (err set). */
ssize_t input_read(struct input *in, void *buf, size_t cap, struct tp_error *err);

/* Copies up to cap bytes from the start of the file without moving the read position. */
size_t input_peek(struct input *in, void *buf, size_t cap);

/* Total size in bytes (-1 if unknown) and bytes read so far in this pass. */
int64_t input_size(const struct input *in);
int64_t input_offset(const struct input *in);

/* What to do with non-UTF-8 text when no encoding was named. */
enum input_fallback {
    INPUT_FALLBACK_GB18030, /* Chinese bank exports saved from Excel: GBK/GB18030 without BOM */
    INPUT_FALLBACK_NONE,    /* MT940: must be UTF-8 (or ASCII) unless --encoding says otherwise */
};

struct input_lines;

/*
 * Decoded line reader over in. encoding: NULL or "auto" detects (BOM: UTF-8, UTF-16LE/BE; then
 * UTF-8 if the first line with non-ASCII bytes is valid UTF-8, else the fallback); any other
 * name is passed to iconv. Caller owns the result: input_lines_free().
 */
struct input_lines *input_lines_new(struct input *in, const char *encoding,
                                    enum input_fallback fallback, struct tp_error *err);
void input_lines_free(struct input_lines *l);

/*
 * Next line without its line break (CR LF or LF). The pointer is valid until the next call.
 * Returns 1 with a line, 0 at the end, -1 on an error (err says why; *lineno is the line).
 */
int input_lines_next(struct input_lines *l, const char **line, size_t *len, uint32_t *lineno,
                     struct tp_error *err);

/* Encoding in use, e.g. "utf-8", "gb18030", "utf-16le" ("ascii" while undecided). */
const char *input_lines_encoding(const struct input_lines *l);

#endif
