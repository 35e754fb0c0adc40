/* The Top Up page's static files from INTAKE_WEB_DIR: content types, no escape from the folder. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "intake.h"
#include "topup/log.h"

#define STATIC_PATH_MAX 256
#define STATIC_FILE_MAX (8 * 1024 * 1024) /* larger files are not part of a page: 404 */

/*
 * The page is the only thing with the token: no framing, no third-party anything. Styles and
 * scripts come from files (no inline script), the favicon may be a data: URL.
 */
#define STATIC_CSP                                                                                 \
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"               \
    " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

static const struct {
    const char *ext;
    const char *type;
} static_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json; charset=utf-8"},
    {".map", "application/json; charset=utf-8"},
    {".txt", "text/plain; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".webp", "image/webp"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".woff", "font/woff"},
};

void static_init(struct intake *app)
{
    app->web_root[0] = '\0';
    if (realpath(app->cfg.web_dir, app->web_root) == NULL) {
        app->web_root[0] = '\0';
        log_warn("web folder not found; the page is not served (the API is)",
                 LF_S("dir", app->cfg.web_dir), LF_S("error", strerror(errno)));
        return;
    }
    log_info("serving the Top Up page", LF_S("dir", app->web_root));
}

static const char *static_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot != NULL && (slash == NULL || dot > slash)) {
        for (size_t i = 0; i < sizeof(static_types) / sizeof(static_types[0]); i++) {
            if (strcmp(dot, static_types[i].ext) == 0) {
                return static_types[i].type;
            }
        }
    }
    return "application/octet-stream";
}

/*
 * A request path maps to a file only if every segment is a plain name: no "", ".", ".." or
 * hidden names, no backslash or control bytes. MHD has already percent-decoded the path, so
 * "%2e%2e" arrives here as ".." and is refused too.
 */
static bool static_path_ok(const char *path)
{
    size_t n = strlen(path);
    if (n < 2 || n >= STATIC_PATH_MAX || path[0] != '/') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f || c == '\\') {
            return false;
        }
        if (c == '/' && (path[i + 1] == '/' || path[i + 1] == '.' || path[i + 1] == '\0')) {
            return false;
        }
    }
    return true;
}

static void static_not_found(struct intake *app, struct http_request *req)
{
    api_error(app, req, 404, "not_found", "no such page", NULL, false);
}

void static_serve(struct intake *app, struct http_request *req)
{
    const char *method = http_request_method(req);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        http_response_header(req, "Allow", "GET, HEAD");
        api_error(app, req, 405, "method_not_allowed", "static files are read with GET", NULL,
                  false);
        return;
    }
    const char *path = http_request_path(req);
    if (strcmp(path, "/") == 0) {
        path = "/index.html";
    }
    if (app->web_root[0] == '\0' || !static_path_ok(path)) {
        static_not_found(app, req);
        return;
    }
    char full[PATH_MAX];
    int len = snprintf(full, sizeof(full), "%s%s", app->web_root, path);
    if (len < 0 || (size_t)len >= sizeof(full)) {
        static_not_found(app, req);
        return;
    }
    /* Resolved again so that a symbolic link cannot lead out of the folder. */
    char real[PATH_MAX];
    size_t root_len = strlen(app->web_root);
    if (realpath(full, real) == NULL || strncmp(real, app->web_root, root_len) != 0 ||
        real[root_len] != '/') {
        static_not_found(app, req);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_FILE_MAX) {
        if (fd >= 0) {
            close(fd);
        }
        static_not_found(app, req);
        return;
    }
    const char *type = static_type(real);
    http_response_header(req, "Cache-Control", "no-cache");
    http_response_header(req, "X-Content-Type-Options", "nosniff");
    if (strncmp(type, "text/html", 9) == 0) {
        http_response_header(req, "Content-Security-Policy", STATIC_CSP);
        http_response_header(req, "X-Frame-Options", "DENY");
        http_response_header(req, "Referrer-Policy", "no-referrer");
    }
    http_respond_fd(req, 200, type, fd, (uint64_t)st.st_size);
}
