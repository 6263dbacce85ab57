// recperf: definitions shared by the embedding-bag kernels.
//
// The same sources compile three ways:
//   * nvcc / NVRTC (CuPy RawModule, cuda-python) for the GPU: __CUDACC__ or __CUDACC_RTC__;
//   * g++ through kernels/cpu_shim.h, which defines the CUDA built-ins the kernels use
//     (threadIdx/blockIdx/blockDim/gridDim, vector types, atomicMin) and runs every thread of
//     a launch on the CPU (kernels/cpu_shim.cpp).
// The kernels use no shared memory and no barriers. All but `tbe` use no warp shuffles: every
// thread reads and writes only its own outputs, so a sequential run over all threads is exact;
// `tbe` passes indices between a warp's lanes with __shfl_sync, so the CPU runner executes a
// warp's 32 lanes as fibers in lock-step (kernels/cpu_shim.cpp).
//
// Compile-time configuration (set with -D; defaults below):
//   RECPERF_DTYPE_F16        0: float32 table/output, 1: float16 (bits in unsigned short), fp32 accumulation
//   RECPERF_INDEX_I32        0: int64 indices/offsets, 1: int32
//   RECPERF_PREFETCH_DISTANCE  rows loaded ahead into a register ring, 0..16 (0: no ring)
//   RECPERF_PREFETCH_L2HINT  1: prefetch.global.L2 hints for the row l2_prefetch_distance ahead
//                            (a kernel argument: a hint holds no registers, so the distance
//                            need not be a compile-time constant)
//   RECPERF_BOUNDS_INLINE    1: index check inside the hot loop (PyTorch's CUDA_KERNEL_ASSERT);
//                            0: no check in the lookup kernel ("separate": recperf_check_indices
//                               runs before it; "none")
//   RECPERF_VEC_BYTES        warp variant: bytes per lane per load (16, 8, 4 or 2)
//   RECPERF_REGISTER_CAP     0: no cap; else __maxnreg__(cap) on the lookup kernel
#pragma once

#ifndef RECPERF_DTYPE_F16
#define RECPERF_DTYPE_F16 0
#endif
#ifndef RECPERF_INDEX_I32
#define RECPERF_INDEX_I32 0
#endif
#ifndef RECPERF_PREFETCH_DISTANCE
#define RECPERF_PREFETCH_DISTANCE 0
#endif
#ifndef RECPERF_PREFETCH_L2HINT
#define RECPERF_PREFETCH_L2HINT 0
#endif
#ifndef RECPERF_BOUNDS_INLINE
#define RECPERF_BOUNDS_INLINE 1
#endif
#ifndef RECPERF_REGISTER_CAP
#define RECPERF_REGISTER_CAP 0
#endif

#if RECPERF_PREFETCH_DISTANCE < 0 || RECPERF_PREFETCH_DISTANCE > 16
#error "RECPERF_PREFETCH_DISTANCE must be 0..16"
#endif
#if RECPERF_PREFETCH_DISTANCE > 0 && RECPERF_PREFETCH_L2HINT
#error "a register ring (RECPERF_PREFETCH_DISTANCE > 0) and L2 hints are alternatives"
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define RECPERF_ON_DEVICE 1
#else
#define RECPERF_ON_DEVICE 0
#ifndef RECPERF_CPU_SHIM
#error "compile for the host through kernels/cpu_shim.h"
#endif
#endif

typedef long long recperf_i64;
typedef unsigned long long recperf_u64;

#if RECPERF_INDEX_I32
typedef int index_t;
#else
typedef long long index_t;
#endif

#if RECPERF_DTYPE_F16
typedef unsigned short scalar_t;  // IEEE binary16 bits
#else
typedef float scalar_t;
#endif

// ---- per-kernel register cap ------------------------------------------------------------
// __maxnreg__ rather than -maxrregcount: the cap belongs to the lookup kernel only (the
// validation and pinning kernels stay uncapped) and block size is not a compile key.
#if RECPERF_ON_DEVICE && RECPERF_REGISTER_CAP > 0
#define RECPERF_CAP_ATTR __maxnreg__(RECPERF_REGISTER_CAP)
#else
#define RECPERF_CAP_ATTR
#endif

// ---- fp16 <-> fp32 ----------------------------------------------------------------------
#if RECPERF_ON_DEVICE
__device__ __forceinline__ float recperf_h2f(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
__device__ __forceinline__ unsigned short recperf_f2h(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
__device__ __forceinline__ float recperf_bits_to_float(unsigned int u) { return __uint_as_float(u); }
#endif  // host versions: cpu_shim.h

__device__ __forceinline__ float recperf_to_acc(float v) { return v; }
__device__ __forceinline__ float recperf_to_acc(unsigned short v) { return recperf_h2f(v); }
__device__ __forceinline__ void recperf_from_acc(float* dst, float v) { *dst = v; }
__device__ __forceinline__ void recperf_from_acc(unsigned short* dst, float v) { *dst = recperf_f2h(v); }

// ---- cache hints --------------------------------------------------------------------------
#if RECPERF_ON_DEVICE
__device__ __forceinline__ void recperf_prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}
__device__ __forceinline__ void recperf_prefetch_l2_evict_last(const void* p) {
  asm volatile("prefetch.global.L2::evict_last [%0];" ::"l"(p));
}
#else
inline void recperf_prefetch_l2(const void*) {}
inline void recperf_prefetch_l2_evict_last(const void*) {}
#endif

// ---- device-side asserts --------------------------------------------------------------------
// PyTorch 2.1's CUDA_KERNEL_ASSERT (c10/macros/Macros.h):
//   if (C10_UNLIKELY(!(cond))) { __assert_fail(#cond, __FILE__, __LINE__, __func__); }
// The call to the assert handler inside the loop is what costs the registers.
#if RECPERF_ON_DEVICE
#if defined(__CUDACC_RTC__)
extern "C" __device__ void __assertfail(const char* message, const char* file, unsigned int line,
                                        const char* function, unsigned long char_size);
#define RECPERF_ASSERT_FAIL(msg) __assertfail(msg, __FILE__, __LINE__, __func__, 1)
#else
#define RECPERF_ASSERT_FAIL(msg) __assert_fail(msg, __FILE__, static_cast<unsigned int>(__LINE__), __func__)
#endif
#define RECPERF_KERNEL_ASSERT(cond)        \
  if (__builtin_expect(!(cond), 0)) {      \
    RECPERF_ASSERT_FAIL(#cond);            \
  }
// PyTorch's in-loop index assert checks only the upper bound (input[emb] < numRows).
#define RECPERF_PYTORCH_INDEX_ASSERT(idx, num_rows, pos) RECPERF_KERNEL_ASSERT((idx) < (num_rows))
// The warp variant checks both bounds with one unsigned comparison.
#define RECPERF_INDEX_ASSERT(idx, num_rows, pos) \
  RECPERF_KERNEL_ASSERT((recperf_u64)(recperf_i64)(idx) < (recperf_u64)(num_rows))
// PyTorch's current kernel asserts once after its validation loop.
#define RECPERF_PYTORCH_PRELOOP_ASSERT(has_invalid, input, begin, end, num_rows) \
  RECPERF_KERNEL_ASSERT(!(has_invalid) && "Invalid input index in EmbeddingBag: index out of range [0, numRows)")
// A read the CUDA original makes without a check (CPU runs check it, so nothing is read out of bounds).
#define RECPERF_CPU_READ_CHECK(idx, num_rows, pos)
#else
// On the CPU a failed check stops the thread before the read and records the position
// (cpu_shim.h); negative indices are caught too, so the CPU run never reads out of bounds.
#define RECPERF_KERNEL_ASSERT(cond) \
  if (!(cond)) {                    \
    recperf_cpu_assert_fail(#cond); \
  }
#define RECPERF_PYTORCH_INDEX_ASSERT(idx, num_rows, pos) recperf_cpu_check_index((idx), (num_rows), (pos))
#define RECPERF_INDEX_ASSERT(idx, num_rows, pos) recperf_cpu_check_index((idx), (num_rows), (pos))
#define RECPERF_PYTORCH_PRELOOP_ASSERT(has_invalid, input, begin, end, num_rows)               \
  if (has_invalid) {                                                                          \
    for (recperf_i64 bad = (begin); bad < (end); ++bad) recperf_cpu_check_index((input)[bad], (num_rows), bad); \
  }
#define RECPERF_CPU_READ_CHECK(idx, num_rows, pos) recperf_cpu_check_index((idx), (num_rows), (pos))
#endif

#define RECPERF_MODE_SUM 0
#define RECPERF_MODE_MEAN 1

// ---- entry points -----------------------------------------------------------------------------
// A kernel's body is a __device__ __forceinline__ function; RECPERF_ENTRIES(ENTRY) defines its
// __global__ entry points: one, capped by RECPERF_REGISTER_CAP, or, for the resource-table
// build, the uncapped <kernel> plus one <kernel>_cap<N> per cap in RECPERF_CAP_LIST(X)
// (e.g. -D'RECPERF_CAP_LIST(X)=X(24) X(32)'), so one front-end run serves every cap.
#ifdef RECPERF_CAP_LIST
#define RECPERF_ENTRIES(ENTRY) ENTRY(, ) RECPERF_CAP_LIST(ENTRY##_CAPPED)
#else
#define RECPERF_ENTRIES(ENTRY) ENTRY(RECPERF_CAP_ATTR, )
#endif
