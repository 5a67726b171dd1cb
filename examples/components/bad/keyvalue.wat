;; A command component (it exports wasi:cli/run@0.2.12, whose run returns
;; ok) that also imports wasi:keyvalue/store@0.2.0, an interface the host
;; does not provide: linking must fail and name that import. The import's
;; instance type is a small subset of the real wasi:keyvalue store
;; interface, enough to be a named import; run never calls it.
(component
  (import "wasi:keyvalue/store@0.2.0" (instance
    (export "open" (func (param "identifier" string) (result u32)))))
  (core module $m
    (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.12" (instance $run-instance)))
