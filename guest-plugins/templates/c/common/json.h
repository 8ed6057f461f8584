/* json.h: a tiny, strict reader for the config JSON that `setup` receives.
 *
 * It reads from a (pointer, length) buffer, because strings from the gateway are
 * NOT NUL-terminated, allocates only the strings you ask for, and follows RFC 8259
 * (no comments, no trailing commas, nesting at most JSON_MAX_DEPTH deep).
 *
 * Every function returns false on failure and leaves a message in `j->error`
 * (static text, never freed). Once an error is set every later call returns false
 * too, so a caller can walk a whole object and check `j->error` once.
 *
 *     json_reader j; json_init(&j, buf, len);
 *     size_t i = 0; char *key;
 *     if (json_object_begin(&j))
 *         while (json_object_next(&j, &i, &key)) { ...read the value...; free(key); }
 *     if (j.error == NULL && json_end(&j)) ...ok...
 */
#ifndef ISTHMUS_JSON_H
#define ISTHMUS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 32

typedef struct {
    const uint8_t *p, *end;
    const char *error;
} json_reader;

void json_init(json_reader *j, const uint8_t *s, size_t len);

/* Consumes `{`. */
bool json_object_begin(json_reader *j);
/* Reads the next key of the object and its `:`; false at `}` or on error. `*i` counts
 * the members read so far: start it at 0. `*key` is a heap copy: free it. */
bool json_object_next(json_reader *j, size_t *i, char **key);

/* Consumes `[`. */
bool json_array_begin(json_reader *j);
/* True when another element follows (the reader is then at it); false at `]`. */
bool json_array_next(json_reader *j, size_t *i);

/* Reads a string into a heap copy, NUL-terminated (free it). A string containing
 * `\u0000` is refused, so the copy can be used as a C string. */
bool json_string(json_reader *j, char **out);
/* Reads `true` or `false`. */
bool json_bool(json_reader *j, bool *out);
/* Skips any value. */
bool json_skip(json_reader *j);
/* True when only whitespace is left. */
bool json_end(json_reader *j);

#endif
