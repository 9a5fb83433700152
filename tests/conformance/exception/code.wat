;; Core JSON ABI: ends every call as a failure through tiergate.fail.
(module
  (import "tiergate" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "the input was not acceptable")
  (func (export "alloc") (param $len i32) (result i32) (i32.const 1024))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (call $fail (i32.const 16) (i32.const 28))
    (i64.const 0)))
