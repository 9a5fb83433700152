;; Core JSON ABI: returns its input unchanged (the benchmark function).
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  ;; A bump allocator: each call runs in a fresh instance, so nothing is ever freed.
  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local $need i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.set $need (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.div_u (local.get $need) (i32.const 65536)) (i32.const 1)))
                    (i32.const -1))
          (then unreachable))))
    (local.get $ptr))
  ;; The output is the input: (ptr << 32) | len.
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))
