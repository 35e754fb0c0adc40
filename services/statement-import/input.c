/* Reading a statement file: raw bytes (file or memory) and decoded UTF-8 lines with encodings. */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text.h"
#include "topup/mem.h"

struct input {
    int fd; /* -1 for memory */
    const unsigned char *mem;
    size_t mem_len;
    int64_t size;
    int64_t offset;
    input_raw_fn *hook;
    void *hook_ctx;
};

struct input *input_open_file(const char *path, struct tp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_set(err, TP_INVALID, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        error_set(err, TP_INVALID, "%s is not a regular file", path);
        close(fd);
        return NULL;
    }
    struct input *in = mem_calloc(1, sizeof *in);
    in->fd = fd;
    in->size = st.st_size;
    return in;
}

/* An unlinked, private file in dir: O_TMPFILE where the file system has it, else mkstemp. */
static int input_spool_open(const char *dir, struct tp_error *err)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC | O_EXCL, 0600);
    if (fd >= 0) {
        return fd;
    }
    char path[4096];
    if (snprintf(path, sizeof path, "%s/statement-import.XXXXXX", dir) >= (int)sizeof path) {
        error_set(err, TP_FATAL, "spool directory name too long");
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        error_set(err, TP_FATAL, "cannot create a file in the spool directory %s: %s", dir,
                  strerror(errno));
        return -1;
    }
    (void)unlink(path);
    return fd;
}

static bool input_write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool input_same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ino == b->st_ino;
}

enum tp_status input_snapshot(struct input *in, const char *spool_dir, char sha256_hex[65],
                              struct tp_error *err)
{
    enum tp_status st = TP_OK;
    unsigned char *buf = mem_alloc(INPUT_CHUNK_BYTES);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    struct stat before, after;
    int64_t total = 0;
    int spool = -1;
    if (in->fd < 0 || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        st = error_set(err, TP_FATAL, "cannot take the file's SHA-256");
        goto out;
    }
    spool = input_spool_open(spool_dir, err);
    if (spool < 0) {
        st = TP_FATAL;
        goto out;
    }
    if (fstat(in->fd, &before) != 0 || lseek(in->fd, 0, SEEK_SET) != 0) {
        st = error_set(err, TP_FATAL, "cannot read the file: %s", strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n = read(in->fd, buf, INPUT_CHUNK_BYTES);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            st = error_set(err, TP_FATAL, "read error: %s", strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        EVP_DigestUpdate(md, buf, (size_t)n);
        if (!input_write_all(spool, buf, (size_t)n)) {
            st = error_set(err, TP_FATAL, "cannot copy the file into the spool directory %s: %s",
                           spool_dir, strerror(errno));
            goto out;
        }
        total += n;
    }
    if (fstat(in->fd, &after) != 0 || !input_same_stat(&before, &after) ||
        total != (int64_t)after.st_size) {
        st = error_set(err, TP_INVALID,
                       "the file changed while it was being read (%lld bytes read, now %lld): is "
                       "it still being written? Import it once it is complete",
                       (long long)total, (long long)after.st_size);
        goto out;
    }
    uint8_t digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    for (int i = 0; i < 32; i++) {
        snprintf(sha256_hex + 2 * i, 3, "%02x", digest[i]);
    }
    close(in->fd);
    in->fd = spool;
    spool = -1;
    in->size = total;
    in->offset = 0;
    if (lseek(in->fd, 0, SEEK_SET) != 0) {
        st = error_set(err, TP_FATAL, "cannot rewind the copy: %s", strerror(errno));
    }
out:
    if (spool >= 0) {
        close(spool);
    }
    EVP_MD_CTX_free(md);
    free(buf);
    return st;
}

struct input *input_open_mem(const void *data, size_t len)
{
    struct input *in = mem_calloc(1, sizeof *in);
    in->fd = -1;
    in->mem = data;
    in->mem_len = len;
    in->size = (int64_t)len;
    return in;
}

void input_free(struct input *in)
{
    if (in == NULL) {
        return;
    }
    if (in->fd >= 0) {
        close(in->fd);
    }
    free(in);
}

void input_set_hook(struct input *in, input_raw_fn *fn, void *ctx)
{
    in->hook = fn;
    in->hook_ctx = ctx;
}

enum tp_status input_rewind(struct input *in, struct tp_error *err)
{
    if (in->fd >= 0 && lseek(in->fd, 0, SEEK_SET) != 0) {
        return error_set(err, TP_FATAL, "cannot rewind the file: %s", strerror(errno));
    }
    in->offset = 0;
    return TP_OK;
}

ssize_t input_read(struct input *in, void *buf, size_t cap, struct tp_error *err)
{
    ssize_t n;
    if (in->fd < 0) {
        size_t left = in->mem_len - (size_t)in->offset;
        n = (ssize_t)(left < cap ? left : cap);
        memcpy(buf, in->mem + in->offset, (size_t)n);
    } else {
        do {
            n = read(in->fd, buf, cap);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            error_set(err, TP_FATAL, "read error: %s", strerror(errno));
            return -1;
        }
    }
    in->offset += n;
    if (n > 0 && in->hook != NULL) {
        in->hook(in->hook_ctx, buf, (size_t)n);
    }
    return n;
}

size_t input_peek(struct input *in, void *buf, size_t cap)
{
    if (in->fd < 0) {
        size_t n = in->mem_len < cap ? in->mem_len : cap;
        memcpy(buf, in->mem, n);
        return n;
    }
    ssize_t n;
    do {
        n = pread(in->fd, buf, cap, 0);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? 0 : (size_t)n;
}

int64_t input_size(const struct input *in)
{
    return in->size;
}

int64_t input_offset(const struct input *in)
{
    return in->offset;
}

/* ---- decoded lines ---- */

/* Decoded text buffer: room for a full chunk decoded (worst case x2) plus the longest line. */
#define LINES_DEC_CAP (2 * 2 * INPUT_CHUNK_BYTES + INPUT_LINE_MAX)

enum lines_mode { LINES_UNDECIDED, LINES_UTF8, LINES_ICONV };

struct input_lines {
    struct input *in;
    enum lines_mode mode;
    enum input_fallback fallback;
    iconv_t cd;
    char enc_name[32];
    bool started; /* BOM handled */
    bool eof;     /* no more raw bytes */
    unsigned char raw[INPUT_CHUNK_BYTES + 8];
    size_t raw_len; /* carried-over bytes of an incomplete sequence at raw[0..raw_len) */
    char *dec;
    size_t pos, end;
    uint32_t lineno;   /* lines returned so far */
    uint32_t err_line; /* line of the last decoding error */
};

static bool input_is_utf8_name(const char *e)
{
    return strcasecmp(e, "utf-8") == 0 || strcasecmp(e, "utf8") == 0;
}

static enum tp_status input_lines_open_iconv(struct input_lines *l, const char *from,
                                             struct tp_error *err)
{
    l->cd = iconv_open("UTF-8", from);
    if (l->cd == (iconv_t)-1) {
        return error_set(err, TP_INVALID, "unknown encoding \"%s\"", from);
    }
    l->mode = LINES_ICONV;
    snprintf(l->enc_name, sizeof l->enc_name, "%s", from);
    for (char *p = l->enc_name; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    return TP_OK;
}

struct input_lines *input_lines_new(struct input *in, const char *encoding,
                                    enum input_fallback fallback, struct tp_error *err)
{
    struct input_lines *l = mem_calloc(1, sizeof *l);
    l->in = in;
    l->fallback = fallback;
    l->cd = (iconv_t)-1;
    l->dec = mem_alloc(LINES_DEC_CAP);
    snprintf(l->enc_name, sizeof l->enc_name, "ascii");
    if (encoding != NULL && strcasecmp(encoding, "auto") != 0) {
        if (input_is_utf8_name(encoding)) {
            l->mode = LINES_UTF8;
            snprintf(l->enc_name, sizeof l->enc_name, "utf-8");
        } else if (input_lines_open_iconv(l, encoding, err) != TP_OK) {
            input_lines_free(l);
            return NULL;
        }
    }
    return l;
}

void input_lines_free(struct input_lines *l)
{
    if (l == NULL) {
        return;
    }
    if (l->cd != (iconv_t)-1) {
        iconv_close(l->cd);
    }
    free(l->dec);
    free(l);
}

const char *input_lines_encoding(const struct input_lines *l)
{
    return l->enc_name;
}

static uint32_t input_count_nl(const char *s, size_t n)
{
    uint32_t c = 0;
    const char *p = s;
    const char *e = s + n;
    while ((p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
        c++;
        p++;
    }
    return c;
}

/* Decides UTF-8 or the fallback from the first run of non-ASCII bytes in raw[from..n). */
static enum tp_status input_lines_decide(struct input_lines *l, const unsigned char *raw,
                                         size_t from, size_t n, struct tp_error *err)
{
    const unsigned char *nl = memchr(raw + from, '\n', n - from);
    size_t seg_end = nl != NULL ? (size_t)(nl - raw) : n;
    bool incomplete;
    size_t ok = text_utf8_valid_prefix(raw + from, seg_end - from, &incomplete);
    if (ok == seg_end - from || (incomplete && nl == NULL && !l->eof)) {
        l->mode = LINES_UTF8;
        snprintf(l->enc_name, sizeof l->enc_name, "utf-8");
        return TP_OK;
    }
    if (l->fallback == INPUT_FALLBACK_GB18030) {
        return input_lines_open_iconv(l, "GB18030", err);
    }
    /* raw[0..from) is already in the buffer (ASCII): count it there, not twice. */
    l->err_line = l->lineno + 1 + input_count_nl(l->dec + l->pos, l->end - l->pos) +
                  input_count_nl((const char *)raw + from, ok);
    return error_set(err, TP_INVALID,
                     "not UTF-8 text (byte 0x%02X); name the encoding with --encoding",
                     raw[from + ok]);
}

/* Appends decoded text from raw[0..n); leaves an incomplete trailing sequence in l->raw. */
static enum tp_status input_lines_decode(struct input_lines *l, size_t n, struct tp_error *err)
{
    unsigned char *raw = l->raw;
    size_t i = 0;
    if (l->mode == LINES_UNDECIDED) {
        while (i < n && raw[i] < 0x80) {
            i++;
        }
        memcpy(l->dec + l->end, raw, i);
        l->end += i;
        if (i == n) {
            l->raw_len = 0;
            return TP_OK;
        }
        enum tp_status st = input_lines_decide(l, raw, i, n, err);
        if (st != TP_OK) {
            return st;
        }
    }
    if (l->mode == LINES_UTF8) {
        bool incomplete;
        size_t ok = text_utf8_valid_prefix(raw + i, n - i, &incomplete);
        memcpy(l->dec + l->end, raw + i, ok);
        l->end += ok;
        if (i + ok < n) {
            if (!incomplete || l->eof) {
                /* The valid part is already in the buffer: count lines there only. */
                l->err_line = l->lineno + 1 + input_count_nl(l->dec + l->pos, l->end - l->pos);
                return error_set(err, TP_INVALID, "invalid UTF-8 byte sequence (0x%02X)",
                                 raw[i + ok]);
            }
            /* Keep the incomplete tail for the next read. */
            size_t tail = n - i - ok;
            memmove(raw, raw + i + ok, tail);
            l->raw_len = tail;
            return TP_OK;
        }
        l->raw_len = 0;
        return TP_OK;
    }
    char *inp = (char *)raw + i;
    size_t inleft = n - i;
    char *outp = l->dec + l->end;
    size_t outleft = LINES_DEC_CAP - l->end;
    while (inleft > 0) {
        size_t r = iconv(l->cd, &inp, &inleft, &outp, &outleft);
        if (r != (size_t)-1) {
            continue;
        }
        if (errno == EINVAL && !l->eof) {
            break; /* incomplete multibyte sequence: wait for more bytes */
        }
        size_t at = (size_t)((unsigned char *)inp - raw);
        l->err_line =
            l->lineno + 1 + input_count_nl(l->dec + l->pos, (size_t)(outp - l->dec) - l->pos);
        l->end = (size_t)(outp - l->dec);
        return error_set(err, TP_INVALID, "invalid %s byte sequence (0x%02X)", l->enc_name,
                         at < n ? raw[at] : 0);
    }
    l->end = (size_t)(outp - l->dec);
    memmove(raw, inp, inleft);
    l->raw_len = inleft;
    return TP_OK;
}

/* Handles a byte-order mark at the very start of the file. */
static enum tp_status input_lines_bom(struct input_lines *l, size_t *n, struct tp_error *err)
{
    unsigned char *raw = l->raw;
    size_t skip = 0;
    if (*n >= 3 && raw[0] == 0xEF && raw[1] == 0xBB && raw[2] == 0xBF) {
        if (l->mode == LINES_UNDECIDED) {
            l->mode = LINES_UTF8;
            snprintf(l->enc_name, sizeof l->enc_name, "utf-8");
        }
        skip = l->mode == LINES_UTF8 ? 3 : 0;
    } else if (*n >= 2 && l->mode == LINES_UNDECIDED &&
               ((raw[0] == 0xFF && raw[1] == 0xFE) || (raw[0] == 0xFE && raw[1] == 0xFF))) {
        /* Excel's "Unicode text" export: UTF-16 with a BOM, usually tab-separated. */
        enum tp_status st =
            input_lines_open_iconv(l, raw[0] == 0xFF ? "UTF-16LE" : "UTF-16BE", err);
        if (st != TP_OK) {
            return st;
        }
        skip = 2;
    }
    memmove(raw, raw + skip, *n - skip);
    *n -= skip;
    return TP_OK;
}

/* Reads and decodes one more chunk. */
static enum tp_status input_lines_fill(struct input_lines *l, struct tp_error *err)
{
    if (l->pos > 0) {
        memmove(l->dec, l->dec + l->pos, l->end - l->pos);
        l->end -= l->pos;
        l->pos = 0;
    }
    size_t room = (LINES_DEC_CAP - l->end) / 2;
    size_t want = INPUT_CHUNK_BYTES - l->raw_len;
    if (want > room) {
        want = room;
    }
    ssize_t got = input_read(l->in, l->raw + l->raw_len, want, err);
    if (got < 0) {
        return TP_FATAL;
    }
    if (got == 0) {
        l->eof = true;
    }
    size_t n = l->raw_len + (size_t)got;
    if (!l->started) {
        l->started = true;
        enum tp_status st = input_lines_bom(l, &n, err);
        if (st != TP_OK) {
            return st;
        }
    }
    size_t before = l->end;
    enum tp_status st = input_lines_decode(l, n, err);
    if (st != TP_OK) {
        return st;
    }
    if (memchr(l->dec + before, '\0', l->end - before) != NULL) {
        const char *z = memchr(l->dec + before, '\0', l->end - before);
        l->err_line =
            l->lineno + 1 + input_count_nl(l->dec + l->pos, (size_t)(z - l->dec) - l->pos);
        return error_set(err, TP_INVALID,
                         "NUL byte in text (a binary file, or UTF-16 without a byte-order mark? "
                         "name the encoding with --encoding)");
    }
    return TP_OK;
}

int input_lines_next(struct input_lines *l, const char **line, size_t *len, uint32_t *lineno,
                     struct tp_error *err)
{
    for (;;) {
        char *start = l->dec + l->pos;
        char *nl = memchr(start, '\n', l->end - l->pos);
        if (nl != NULL || (l->eof && l->raw_len == 0 && l->pos < l->end)) {
            size_t n = nl != NULL ? (size_t)(nl - start) : l->end - l->pos;
            l->pos += nl != NULL ? n + 1 : n;
            if (n > 0 && start[n - 1] == '\r') {
                n--;
            }
            if (n > INPUT_LINE_MAX) {
                *lineno = l->lineno + 1;
                error_set(err, TP_INVALID, "line longer than %d bytes", INPUT_LINE_MAX);
                return -1;
            }
            l->lineno++;
            *line = start;
            *len = n;
            *lineno = l->lineno;
            return 1;
        }
        if (l->eof) {
            if (l->raw_len > 0) {
                *lineno = l->lineno + 1 + input_count_nl(l->dec + l->pos, l->end - l->pos);
                error_set(err, TP_INVALID, "file ends inside a multi-byte character");
                return -1;
            }
            return 0;
        }
        if (l->end - l->pos > INPUT_LINE_MAX) {
            *lineno = l->lineno + 1;
            error_set(err, TP_INVALID, "line longer than %d bytes", INPUT_LINE_MAX);
            return -1;
        }
        l->err_line = 0;
        enum tp_status st = input_lines_fill(l, err);
        if (st != TP_OK) {
            *lineno = l->err_line != 0 ? l->err_line : l->lineno + 1;
            return -1;
        }
    }
}
