/* json.c: see json.h. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

void json_init(json_reader *j, const uint8_t *s, size_t len) {
    j->p = s;
    j->end = s + len;
    j->error = NULL;
}

static bool fail(json_reader *j, const char *msg) {
    if (j->error == NULL) j->error = msg;
    return false;
}

static void skip_ws(json_reader *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Skips whitespace and consumes `c` if it comes next. */
static bool eat(json_reader *j, uint8_t c) {
    skip_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

static bool expect(json_reader *j, uint8_t c, const char *msg) {
    if (j->error != NULL) return false;
    return eat(j, c) || fail(j, msg);
}

bool json_object_begin(json_reader *j) { return expect(j, '{', "expected an object"); }
bool json_array_begin(json_reader *j) { return expect(j, '[', "expected a list"); }

bool json_object_next(json_reader *j, size_t *i, char **key) {
    if (j->error != NULL) return false;
    if (eat(j, '}')) return false;
    if (*i > 0 && !expect(j, ',', "expected `,` or `}` in an object")) return false;
    skip_ws(j);
    if (j->p >= j->end || *j->p != '"') return fail(j, "expected a key in an object");
    if (!json_string(j, key)) return false;
    if (!expect(j, ':', "expected `:` after a key")) {
        free(*key);
        *key = NULL;
        return false;
    }
    (*i)++;
    return true;
}

bool json_array_next(json_reader *j, size_t *i) {
    if (j->error != NULL) return false;
    if (eat(j, ']')) return false;
    if (*i > 0 && !expect(j, ',', "expected `,` or `]` in a list")) return false;
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') return fail(j, "a list ends with `,`");
    (*i)++;
    return true;
}

static int hex4(const uint8_t *s) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

/* Decodes `\uXXXX` (and its low surrogate when it is a high one) at j->p, which is just
 * past the `u`. Returns the code point, or -1 on error. */
static long unicode_escape(json_reader *j) {
    long cp = j->end - j->p >= 4 ? hex4(j->p) : -1;
    if (cp < 0) {
        fail(j, "bad \\u escape");
        return -1;
    }
    j->p += 4;
    if (cp >= 0xD800 && cp <= 0xDFFF) { /* a surrogate: only a high one followed by a low one */
        long lo = cp <= 0xDBFF && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' ? hex4(j->p + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
            fail(j, "lone surrogate in \\u escape");
            return -1;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        j->p += 6;
    }
    return cp;
}

static size_t put_utf8(uint8_t *o, long cp) {
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 0x3F); return 2; }
    if (cp < 0x10000) {
        o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 0x3F); o[2] = 0x80 | (cp & 0x3F);
        return 3;
    }
    o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 0x3F);
    o[2] = 0x80 | ((cp >> 6) & 0x3F); o[3] = 0x80 | (cp & 0x3F);
    return 4;
}

/* Reads a string. With `out` NULL it only skips it. The decoded text is never longer
 * than the escaped one, so one allocation of the raw length is enough. */
static bool string_or_skip(json_reader *j, char **out) {
    if (out != NULL) *out = NULL;
    if (!expect(j, '"', "expected a string")) return false;
    const uint8_t *start = j->p;
    while (j->p < j->end && *j->p != '"') j->p += (*j->p == '\\' && j->p + 1 < j->end) ? 2 : 1;
    if (j->p >= j->end) return fail(j, "unterminated string");
    size_t raw = (size_t)(j->p - start);
    j->p = start;
    uint8_t *buf = out != NULL ? malloc(raw + 1) : NULL;
    if (out != NULL && buf == NULL) return fail(j, "out of memory");
    size_t n = 0;
    while (*j->p != '"') {
        uint8_t c = *j->p++;
        if (c < 0x20) { free(buf); return fail(j, "control character in a string"); }
        if (c != '\\') {
            if (buf != NULL) buf[n++] = c; /* raw bytes, UTF-8 included, are copied as they are */
            continue;
        }
        long cp;
        switch (c = *j->p++) {
        case '"': case '\\': case '/': cp = c; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u': cp = unicode_escape(j); break;
        default: cp = -1; fail(j, "bad escape in a string");
        }
        if (cp < 0) { free(buf); return false; }
        if (cp == 0) { free(buf); return fail(j, "\\u0000 in a string"); }
        if (buf != NULL) n += put_utf8(buf + n, cp);
    }
    j->p++; /* closing quote */
    if (out != NULL) {
        buf[n] = 0;
        *out = (char *)buf;
    }
    return true;
}

bool json_string(json_reader *j, char **out) { return string_or_skip(j, out); }

static bool word(json_reader *j, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return false;
    j->p += n;
    return true;
}

bool json_bool(json_reader *j, bool *out) {
    if (j->error != NULL) return false;
    skip_ws(j);
    if (word(j, "true")) return *out = true, true;
    if (word(j, "false")) return *out = false, true;
    return fail(j, "expected true or false");
}

static bool digits(json_reader *j) {
    const uint8_t *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > s;
}

static bool number(json_reader *j) {
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0') j->p++;
    else if (!digits(j)) return fail(j, "bad number");
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!digits(j)) return fail(j, "bad number");
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (!digits(j)) return fail(j, "bad number");
    }
    return true;
}

static bool skip(json_reader *j, int depth) {
    if (j->error != NULL) return false;
    if (depth > JSON_MAX_DEPTH) return fail(j, "nested too deeply");
    skip_ws(j);
    if (j->p >= j->end) return fail(j, "expected a value");
    size_t i = 0;
    char *key;
    switch (*j->p) {
    case '"': return string_or_skip(j, NULL);
    case '{':
        json_object_begin(j);
        while (json_object_next(j, &i, &key)) {
            free(key);
            skip(j, depth + 1);
        }
        return j->error == NULL;
    case '[':
        json_array_begin(j);
        while (json_array_next(j, &i)) skip(j, depth + 1);
        return j->error == NULL;
    case 't': case 'f': case 'n':
        if (word(j, "true") || word(j, "false") || word(j, "null")) return true;
        return fail(j, "expected a value");
    default: return number(j);
    }
}

bool json_skip(json_reader *j) { return skip(j, 0); }

bool json_end(json_reader *j) {
    if (j->error != NULL) return false;
    skip_ws(j);
    return j->p == j->end || fail(j, "unexpected text after the value");
}
