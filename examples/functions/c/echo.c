/* WASI command in C: reads the input JSON from stdin, writes it to stdout, logs to stderr.
 * Build: ./build.sh (clang --target=wasm32-wasi). */
#include <stdio.h>

/* static, not on the stack: wasi-libc's default stack is 64 KiB */
static char buffer[65536];

int main(void) {
    size_t total = 0, n;
    fputs("c echo: reading stdin\n", stderr);
    while ((n = fread(buffer, 1, sizeof buffer, stdin)) > 0) {
        fwrite(buffer, 1, n, stdout);
        total += n;
    }
    fprintf(stderr, "c echo: %zu bytes\n", total);
    return 0;
}
