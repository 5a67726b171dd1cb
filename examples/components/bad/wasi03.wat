;; A command component (it exports wasi:cli/run@0.2.12) that imports
;; wasi:cli/environment@0.3.0, a WASI version Wasmtime 48's preview 2 linker
;; does not have (it links 0.2.x, up to 0.2.12): linking must fail and say
;; which version the host has. run never calls the import.
(component
  (import "wasi:cli/environment@0.3.0" (instance
    (export "get-arguments" (func (result (list string))))))
  (core module $m
    (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.12" (instance $run-instance)))
