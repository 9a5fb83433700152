;; Core JSON ABI: writes a log entry through tiergate.log and answers a fixed greeting.
(module
  (import "tiergate" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "saying hello")
  (data (i32.const 64) "{\"message\":\"hello from wasm\"}")
  (func (export "alloc") (param $len i32) (result i32) (i32.const 1024))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (call $log (i32.const 16) (i32.const 12))
    ;; (64 << 32) | 29
    (i64.const 274877906973)))
