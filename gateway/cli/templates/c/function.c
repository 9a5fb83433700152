/* {name}: a tiergate function in C, built into a WASI command module (wasm32-wasi).
 *
 * The gateway writes the input JSON to stdin and reads the output JSON from stdout; each line
 * written to stderr is a log line, and exiting with a status other than 0 fails the call (its
 * error is the last stderr lines). This one answers {"message": "hello, NAME!"} to
 * {"name": "NAME"} and {"message": "hello, world!"} to null. Build it with `make`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* All of stdin, or NULL when memory runs out; *len is its length. */
static char *read_input(size_t *len) {
    size_t size = 4096, used = 0, n;
    char *buffer = malloc(size);
    while (buffer != NULL && (n = fread(buffer + used, 1, size - used, stdin)) > 0) {
        used += n;
        if (used == size) {
            char *grown = realloc(buffer, size *= 2);
            if (grown == NULL) free(buffer);
            buffer = grown;
        }
    }
    *len = used;
    return buffer;
}

static const char *skip_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* p is at a string's opening quote: the character after its closing one (NULL if none). */
static const char *skip_string(const char *p, const char *end) {
    for (p++; p < end; p++) {
        if (*p == '\\') p++;
        else if (*p == '"') return p + 1;
    }
    return NULL;
}

/* p is at a value: the character after it. The input is valid JSON (the gateway parsed it). */
static const char *skip_value(const char *p, const char *end) {
    if (*p == '"') return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        while (p < end && !strchr(",]} \t\n\r", *p)) p++; /* number, true, false, null */
        return p;
    }
    for (int depth = 0; p != NULL && p < end;) {
        if (*p == '"') { p = skip_string(p, end); continue; }
        if (*p == '{' || *p == '[') depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
        p++;
    }
    return NULL;
}

/* The text of the string field `key` of the JSON object in [p, end), as written (its escapes
 * kept, so it can be written back into a JSON string as it is): 1 when found, else 0. */
static int string_field(const char *p, const char *end, const char *key,
                        const char **value, size_t *value_len) {
    size_t key_len = strlen(key);
    p = skip_space(p, end);
    if (p == end || *p != '{') return 0;
    for (p = skip_space(p + 1, end); p < end && *p == '"';) {
        const char *name = p + 1, *after = skip_string(p, end);
        if (after == NULL) return 0;
        int wanted = (size_t)(after - 1 - name) == key_len && !memcmp(name, key, key_len);
        p = skip_space(after, end);
        if (p == end || *p != ':') return 0;
        p = skip_space(p + 1, end);
        if (p == end) return 0;
        if (wanted && *p == '"') {
            const char *closing = skip_string(p, end);
            if (closing == NULL) return 0;
            *value = p + 1;
            *value_len = (size_t)(closing - 1 - *value);
            return 1;
        }
        p = skip_value(p, end);
        if (p == NULL) return 0;
        p = skip_space(p, end);
        if (p < end && *p == ',') p = skip_space(p + 1, end);
    }
    return 0;
}

int main(void) {
    size_t len;
    char *input = read_input(&len);
    if (input == NULL) {
        fputs("out of memory reading the input\n", stderr);
        return 1;
    }
    const char *name = "world";
    size_t name_len = strlen(name);
    string_field(input, input + len, "name", &name, &name_len);
    fprintf(stderr, "greeting %.*s\n", (int)name_len, name);
    printf("{\"message\": \"hello, %.*s!\"}\n", (int)name_len, name);
    free(input);
    return 0;
}
