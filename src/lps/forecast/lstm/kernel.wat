;; The LSTM's forward pass (tfjs-layers' LSTM, gates i, f, c, o; hardSigmoid and tanh; zero initial
;; state; then the dense layer) over a batch of windows, in WebAssembly with 128-bit SIMD: four
;; gates per instruction (so units must be a multiple of 4: kernel.ts falls back to JavaScript
;; otherwise). kernel.ts lays the memory out and calls `layout` once per model, then
;; `run` per batch. Built into kernel-wasm.ts by `npm run kernel:build` (scripts/build-lstm-kernel.mjs).
;;
;; Memory (byte offsets set by `layout`, each 16-aligned), all float32 unless said:
;;   k    kernel, F rows of G = 4U gates          r   recurrent kernel, U rows of G
;;   b    bias, G                                  d   dense kernel, U rows of P (outputs, padded
;;   db   dense bias, P                                to a multiple of 4)
;;   h, c the state, U each                        z   the gates' pre-activations, G
;;   tab  tanh table, float64 pairs (value, derivative × step) every 1/32 on [-9, 9]
;; `run(n, x, out)`: n windows of W rows × F features at x, their P outputs each at out.
(module
  (memory (export "memory") 1)
  (global $W (mut i32) (i32.const 0))
  (global $F (mut i32) (i32.const 0))
  (global $U (mut i32) (i32.const 0))
  (global $P (mut i32) (i32.const 0))
  (global $k (mut i32) (i32.const 0))
  (global $r (mut i32) (i32.const 0))
  (global $b (mut i32) (i32.const 0))
  (global $d (mut i32) (i32.const 0))
  (global $db (mut i32) (i32.const 0))
  (global $h (mut i32) (i32.const 0))
  (global $c (mut i32) (i32.const 0))
  (global $z (mut i32) (i32.const 0))
  (global $tab (mut i32) (i32.const 0))

  (func (export "layout")
    (param $W i32) (param $F i32) (param $U i32) (param $P i32)
    (param $k i32) (param $r i32) (param $b i32) (param $d i32) (param $db i32)
    (param $h i32) (param $c i32) (param $z i32) (param $tab i32)
    (global.set $W (local.get $W))
    (global.set $F (local.get $F))
    (global.set $U (local.get $U))
    (global.set $P (local.get $P))
    (global.set $k (local.get $k))
    (global.set $r (local.get $r))
    (global.set $b (local.get $b))
    (global.set $d (local.get $d))
    (global.set $db (local.get $db))
    (global.set $h (local.get $h))
    (global.set $c (local.get $c))
    (global.set $z (local.get $z))
    (global.set $tab (local.get $tab)))

  ;; tanh in place over `n` floats at `p`: cubic Hermite interpolation of the table (as model.ts's
  ;; fastTanh), in float64. One call per vector, not per value: calls are not inlined here.
  (func $tanh_range (param $p i32) (param $n i32)
    (local $end i32) (local $x f64) (local $q f64) (local $s f64) (local $s2 f64) (local $s3 f64)
    (local $a i32) (local $y f64)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $x (f64.promote_f32 (f32.load (local.get $p))))
        (block $set
          ;; NaN stays NaN; past ±9, ±1 (off by 3e-8).
          (local.set $y (local.get $x))
          (br_if $set (f64.ne (local.get $x) (local.get $x)))
          (local.set $y (f64.const -1))
          (br_if $set (f64.le (local.get $x) (f64.const -9)))
          (local.set $y (f64.const 1))
          (br_if $set (f64.ge (local.get $x) (f64.const 9)))
          (local.set $q (f64.mul (f64.add (local.get $x) (f64.const 9)) (f64.const 32)))
          (local.set $s (f64.floor (local.get $q)))
          (local.set $a
            (i32.add (global.get $tab) (i32.shl (i32.trunc_f64_s (local.get $s)) (i32.const 4))))
          (local.set $s (f64.sub (local.get $q) (local.get $s)))
          (local.set $s2 (f64.mul (local.get $s) (local.get $s)))
          (local.set $s3 (f64.mul (local.get $s2) (local.get $s)))
          (local.set $y
            (f64.add
              (f64.add
                (f64.mul
                  (f64.add
                    (f64.sub
                      (f64.mul (f64.const 2) (local.get $s3))
                      (f64.mul (f64.const 3) (local.get $s2)))
                    (f64.const 1))
                  (f64.load (local.get $a)))
                (f64.mul
                  (f64.add
                    (f64.sub (local.get $s3) (f64.mul (f64.const 2) (local.get $s2)))
                    (local.get $s))
                  (f64.load offset=8 (local.get $a))))
              (f64.add
                (f64.mul
                  (f64.sub
                    (f64.mul (f64.const 3) (local.get $s2))
                    (f64.mul (f64.const 2) (local.get $s3)))
                  (f64.load offset=16 (local.get $a)))
                (f64.mul
                  (f64.sub (local.get $s3) (local.get $s2))
                  (f64.load offset=24 (local.get $a)))))))
        (f32.store (local.get $p) (f32.demote_f64 (local.get $y)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $each))))

  (func (export "run") (param $n i32) (param $x i32) (param $out i32)
    (local $i i32) (local $t i32) (local $g i32) (local $u i32)
    (local $at i32) (local $kp i32) (local $acc v128) (local $vp i32) (local $end i32)
    (local $v v128) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $G4 i32) (local $U4 i32) (local $P4 i32) (local $step i32)
    (local $zu i32) (local $zg i32) (local $cp i32)
    ;; tfjs-layers' hardSigmoid, max(0, min(1, 0.2 x + 0.5)), is written out where it is used.
    (local $c02 v128) (local $c05 v128) (local $c0 v128) (local $c1 v128)
    ;; Bytes: a row of gates, of units, of outputs; a window's rows.
    (local.set $G4 (i32.shl (global.get $U) (i32.const 4)))
    (local.set $U4 (i32.shl (global.get $U) (i32.const 2)))
    (local.set $P4 (i32.shl (global.get $P) (i32.const 2)))
    (local.set $step (i32.shl (global.get $F) (i32.const 2)))
    (local.set $c02 (f32x4.splat (f32.const 0.2)))
    (local.set $c05 (f32x4.splat (f32.const 0.5)))
    (local.set $c0 (f32x4.splat (f32.const 0)))
    (local.set $c1 (f32x4.splat (f32.const 1)))
    (block $windows_done
      (loop $window
        (br_if $windows_done (i32.ge_u (local.get $i) (local.get $n)))
        (memory.fill (global.get $h) (i32.const 0) (local.get $U4))
        (memory.fill (global.get $c) (i32.const 0) (local.get $U4))
        (local.set $at (local.get $x))
        (local.set $t (i32.const 0))
        (block $steps_done
          (loop $time_step
            (br_if $steps_done (i32.ge_u (local.get $t) (global.get $W)))
            ;; z = b + x_t · kernel + h · recurrent: sixteen gates per pass (four vectors of four,
            ;; so four independent chains of additions), each input broadcast once for all four.
            (local.set $g (i32.const 0))
            (block $gates_done
              (loop $gates
                (br_if $gates_done (i32.ge_u (local.get $g) (local.get $G4)))
                (local.set $kp (i32.add (global.get $b) (local.get $g)))
                (local.set $a0 (v128.load (local.get $kp)))
                (local.set $a1 (v128.load offset=16 (local.get $kp)))
                (local.set $a2 (v128.load offset=32 (local.get $kp)))
                (local.set $a3 (v128.load offset=48 (local.get $kp)))
                (local.set $kp (i32.add (global.get $k) (local.get $g)))
                (local.set $vp (local.get $at))
                (local.set $end (i32.add (local.get $at) (local.get $step)))
                (block $features_done
                  (loop $features
                    (br_if $features_done (i32.ge_u (local.get $vp) (local.get $end)))
                    (local.set $v (v128.load32_splat (local.get $vp)))
                    (local.set $a0
                      (f32x4.add (local.get $a0) (f32x4.mul (local.get $v) (v128.load (local.get $kp)))))
                    (local.set $a1
                      (f32x4.add (local.get $a1)
                        (f32x4.mul (local.get $v) (v128.load offset=16 (local.get $kp)))))
                    (local.set $a2
                      (f32x4.add (local.get $a2)
                        (f32x4.mul (local.get $v) (v128.load offset=32 (local.get $kp)))))
                    (local.set $a3
                      (f32x4.add (local.get $a3)
                        (f32x4.mul (local.get $v) (v128.load offset=48 (local.get $kp)))))
                    (local.set $kp (i32.add (local.get $kp) (local.get $G4)))
                    (local.set $vp (i32.add (local.get $vp) (i32.const 4)))
                    (br $features)))
                (local.set $kp (i32.add (global.get $r) (local.get $g)))
                (local.set $vp (global.get $h))
                (local.set $end (i32.add (global.get $h) (local.get $U4)))
                (block $units_done
                  (loop $units
                    (br_if $units_done (i32.ge_u (local.get $vp) (local.get $end)))
                    (local.set $v (v128.load32_splat (local.get $vp)))
                    (local.set $a0
                      (f32x4.add (local.get $a0) (f32x4.mul (local.get $v) (v128.load (local.get $kp)))))
                    (local.set $a1
                      (f32x4.add (local.get $a1)
                        (f32x4.mul (local.get $v) (v128.load offset=16 (local.get $kp)))))
                    (local.set $a2
                      (f32x4.add (local.get $a2)
                        (f32x4.mul (local.get $v) (v128.load offset=32 (local.get $kp)))))
                    (local.set $a3
                      (f32x4.add (local.get $a3)
                        (f32x4.mul (local.get $v) (v128.load offset=48 (local.get $kp)))))
                    (local.set $kp (i32.add (local.get $kp) (local.get $G4)))
                    (local.set $vp (i32.add (local.get $vp) (i32.const 4)))
                    (br $units)))
                (local.set $kp (i32.add (global.get $z) (local.get $g)))
                (v128.store (local.get $kp) (local.get $a0))
                (v128.store offset=16 (local.get $kp) (local.get $a1))
                (v128.store offset=32 (local.get $kp) (local.get $a2))
                (v128.store offset=48 (local.get $kp) (local.get $a3))
                (local.set $g (i32.add (local.get $g) (i32.const 64)))
                (br $gates)))
            ;; c = f·c + i·tanh(g); h = o·tanh(c): z holds every gate's pre-activation (i, f, g, o, U
            ;; each); tanh(g) in place, then c over it for its tanh, four units per instruction.
            (local.set $zg (i32.add (global.get $z) (i32.shl (local.get $U4) (i32.const 1))))
            (call $tanh_range (local.get $zg) (global.get $U))
            (local.set $u (i32.const 0))
            (block $cells_done
              (loop $cells
                (br_if $cells_done (i32.ge_u (local.get $u) (local.get $U4)))
                (local.set $zu (i32.add (global.get $z) (local.get $u)))
                (local.set $cp (i32.add (global.get $c) (local.get $u)))
                (local.set $v
                  (f32x4.add
                    (f32x4.mul
                      (f32x4.min
                        (f32x4.max
                          (f32x4.add (f32x4.mul (local.get $c02) (v128.load (i32.add (local.get $zu) (local.get $U4)))) (local.get $c05))
                          (local.get $c0))
                        (local.get $c1))
                      (v128.load (local.get $cp)))
                    (f32x4.mul
                      (f32x4.min
                        (f32x4.max
                          (f32x4.add (f32x4.mul (local.get $c02) (v128.load (local.get $zu))) (local.get $c05))
                          (local.get $c0))
                        (local.get $c1))
                      (v128.load (i32.add (local.get $zg) (local.get $u))))))
                (v128.store (local.get $cp) (local.get $v))
                (v128.store (i32.add (local.get $zg) (local.get $u)) (local.get $v))
                (local.set $u (i32.add (local.get $u) (i32.const 16)))
                (br $cells)))
            (call $tanh_range (local.get $zg) (global.get $U))
            (local.set $u (i32.const 0))
            (block $hidden_done
              (loop $hidden
                (br_if $hidden_done (i32.ge_u (local.get $u) (local.get $U4)))
                (v128.store (i32.add (global.get $h) (local.get $u))
                  (f32x4.mul
                    (f32x4.min
                      (f32x4.max
                        (f32x4.add (f32x4.mul (local.get $c02) (v128.load (i32.add (i32.add (local.get $zg) (local.get $U4)) (local.get $u)))) (local.get $c05))
                        (local.get $c0))
                      (local.get $c1))
                    (v128.load (i32.add (local.get $zg) (local.get $u)))))
                (local.set $u (i32.add (local.get $u) (i32.const 16)))
                (br $hidden)))
            (local.set $at (i32.add (local.get $at) (local.get $step)))
            (local.set $t (i32.add (local.get $t) (i32.const 1)))
            (br $time_step)))
        ;; out = db + h · dense, four outputs at a time.
        (local.set $g (i32.const 0))
        (block $outputs_done
          (loop $outputs
            (br_if $outputs_done (i32.ge_u (local.get $g) (local.get $P4)))
            (local.set $acc (v128.load (i32.add (global.get $db) (local.get $g))))
            (local.set $kp (i32.add (global.get $d) (local.get $g)))
            (local.set $u (i32.const 0))
            (block $dense_done
              (loop $dense
                (br_if $dense_done (i32.ge_u (local.get $u) (global.get $U)))
                (local.set $acc
                  (f32x4.add (local.get $acc)
                    (f32x4.mul
                      (v128.load32_splat
                        (i32.add (global.get $h) (i32.shl (local.get $u) (i32.const 2))))
                      (v128.load (local.get $kp)))))
                (local.set $kp (i32.add (local.get $kp) (local.get $P4)))
                (local.set $u (i32.add (local.get $u) (i32.const 1)))
                (br $dense)))
            (v128.store (i32.add (local.get $out) (local.get $g)) (local.get $acc))
            (local.set $g (i32.add (local.get $g) (i32.const 16)))
            (br $outputs)))
        (local.set $x (local.get $at))
        (local.set $out (i32.add (local.get $out) (local.get $P4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $window)))))
