/* {name}: runs handler.js, built into this WASI command module, on the QuickJS-ng engine.
 *
 * The gateway writes the input JSON to stdin; this parses it, calls handler(event, context)
 * (plain or async) and writes what it returns, as JSON, to stdout. console.log and
 * console.error lines go to stderr, which the gateway keeps as log lines; a thrown error
 * exits with status 1, its message and stack on stderr: the call fails with them. You
 * should not need to change this file: write handler.js. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quickjs.h"

extern const char handler_js[];           /* handler.js, written into handler_js.c by make */
extern const unsigned long handler_js_len;

#define JS_STACK_BYTES (768 * 1024)       /* below the module's 1 MiB stack (see Makefile) */

/* All of stdin, NUL-terminated, or NULL when memory runs out; *len is its length. */
static char *read_input(size_t *len) {
    size_t size = 4096, used = 0, n;
    char *buffer = malloc(size + 1);
    while (buffer != NULL && (n = fread(buffer + used, 1, size - used, stdin)) > 0) {
        used += n;
        if (used == size) {
            char *grown = realloc(buffer, (size *= 2) + 1);
            if (grown == NULL) free(buffer);
            buffer = grown;
        }
    }
    if (buffer != NULL) buffer[used] = '\0';
    *len = used;
    return buffer;
}

/* console.log(...) and console.error(...): one stderr line, the arguments joined by spaces. */
static JSValue console_line(JSContext *ctx, JSValueConst this_value, int argc, JSValueConst *argv) {
    (void)this_value;
    for (int i = 0; i < argc; i++) {
        const char *text = JS_ToCString(ctx, argv[i]);
        fprintf(stderr, "%s%s", i ? " " : "", text ? text : "?");
        JS_FreeCString(ctx, text);
    }
    fputc('\n', stderr);
    return JS_UNDEFINED;
}

/* Ends the call as a failure: the exception's message, and its stack when it has one. */
static int fail(JSContext *ctx, JSValue error) {
    const char *message = JS_ToCString(ctx, error);
    fprintf(stderr, "%s\n", message ? message : "an exception that cannot be shown");
    JS_FreeCString(ctx, message);
    if (JS_IsError(error)) {
        JSValue stack = JS_GetPropertyStr(ctx, error, "stack");
        const char *trace = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
        if (trace != NULL) fputs(trace, stderr);
        JS_FreeCString(ctx, trace);
        JS_FreeValue(ctx, stack);
    }
    JS_FreeValue(ctx, error);
    return 1;
}

static void set_globals(JSContext *ctx) {
    JSValue global = JS_GetGlobalObject(ctx), console = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, console, "log", JS_NewCFunction(ctx, console_line, "log", 1));
    JS_SetPropertyStr(ctx, console, "error", JS_NewCFunction(ctx, console_line, "error", 1));
    JS_SetPropertyStr(ctx, global, "console", console);
    JS_FreeValue(ctx, global);
}

/* { function_id, execution_id, trace_id }: what the gateway tells the module about the call. */
static JSValue new_context(JSContext *ctx) {
    static const char *names[][2] = {
        {"function_id", "FUNCTION_ID"}, {"execution_id", "EXECUTION_ID"}, {"trace_id", "TRACE_ID"},
    };
    JSValue context = JS_NewObject(ctx);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = getenv(names[i][1]);
        JS_SetPropertyStr(ctx, context, names[i][0], value ? JS_NewString(ctx, value) : JS_NULL);
    }
    return context;
}

/* A promise's value once the jobs it waits on have run (an async handler's answer). */
static JSValue settle(JSContext *ctx, JSValue value) {
    JSContext *job;
    if (!JS_IsPromise(value)) return value;
    while (JS_ExecutePendingJob(JS_GetRuntime(ctx), &job) > 0) {}
    JSPromiseStateEnum state = JS_PromiseState(ctx, value);
    JSValue result = JS_PromiseResult(ctx, value);
    JS_FreeValue(ctx, value);
    if (state == JS_PROMISE_FULFILLED) return result;
    if (state == JS_PROMISE_REJECTED) return JS_Throw(ctx, result);
    JS_FreeValue(ctx, result);
    return JS_ThrowTypeError(ctx, "handler's promise never settled (it waits on nothing that can happen here)");
}

int main(void) {
    JSRuntime *runtime = JS_NewRuntime();
    JSContext *ctx = runtime ? JS_NewContext(runtime) : NULL;
    if (ctx == NULL) {
        fputs("cannot start the JavaScript engine: out of memory\n", stderr);
        return 1;
    }
    JS_SetMaxStackSize(runtime, JS_STACK_BYTES);
    set_globals(ctx);
    JSValue loaded = JS_Eval(ctx, handler_js, handler_js_len, "handler.js", JS_EVAL_TYPE_GLOBAL);
    if (JS_IsException(loaded)) return fail(ctx, JS_GetException(ctx));
    JS_FreeValue(ctx, loaded);
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue handler = JS_GetPropertyStr(ctx, global, "handler");
    JS_FreeValue(ctx, global);
    if (!JS_IsFunction(ctx, handler)) {
        fputs("handler.js defines no function handler(event, context)\n", stderr);
        return 1;
    }
    size_t len;
    char *input = read_input(&len);
    if (input == NULL) {
        fputs("out of memory reading the input\n", stderr);
        return 1;
    }
    JSValue args[2] = {JS_ParseJSON(ctx, input, len, "<input>"), new_context(ctx)};
    free(input);
    if (JS_IsException(args[0])) return fail(ctx, JS_GetException(ctx));
    JSValue output = settle(ctx, JS_Call(ctx, handler, JS_UNDEFINED, 2, args));
    if (JS_IsException(output)) return fail(ctx, JS_GetException(ctx));
    JSValue json = JS_JSONStringify(ctx, output, JS_UNDEFINED, JS_UNDEFINED);
    if (JS_IsException(json)) return fail(ctx, JS_GetException(ctx));
    const char *text = JS_IsUndefined(json) ? NULL : JS_ToCString(ctx, json);
    puts(text ? text : "null");            /* undefined, or a function, answers null */
    return 0;                              /* the process ends here: nothing to free */
}
