// recperf CPU shim: compiles the CUDA kernel sources with a host C++ compiler (g++) and runs
// every block and thread of a launch sequentially on the CPU (kernels/cpu_shim.cpp).
//
// It defines exactly what the kernels use: the execution-space qualifiers, threadIdx/blockIdx/
// blockDim/gridDim, the uint2/uint4 vector types, atomicMin on unsigned long long, IEEE
// binary16 conversions (round to nearest even, as cvt.rn.f16.f32), and the index checks. The
// kernels use no shared memory or barriers; all but `tbe` use no warp shuffles, so a sequential
// run is exact, and `tbe` runs warp by warp with its lanes in lock-step (__shfl_sync below).
#pragma once
#define RECPERF_CPU_SHIM 1

#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __maxnreg__(n)
#define __launch_bounds__(...)

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
// One thread at a time: the launcher sets these before calling the kernel for each thread.
static dim3 threadIdx, blockIdx, blockDim, gridDim;

struct alignas(8) uint2 {
  unsigned int x, y;
};
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};

inline unsigned long long atomicMin(unsigned long long* address, unsigned long long val) {
  const unsigned long long old = *address;
  if (val < old) *address = val;
  return old;
}

inline float recperf_h2f(unsigned short h) {
  const unsigned int sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  unsigned int bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      unsigned int m = man;
      do {
        ++e;
        m <<= 1;
      } while ((m & 0x400u) == 0);
      bits = sign | ((unsigned int)(127 - 15 - e) << 23) | ((m & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline unsigned short recperf_f2h(float f) {
  unsigned int x;
  std::memcpy(&x, &f, 4);
  const unsigned int sign = (x >> 16) & 0x8000u;
  const unsigned int absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return (unsigned short)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
  if (absx >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);  // rounds to infinity
  if (absx < 0x38800000u) {                                          // subnormal half or zero
    if (absx < 0x33000000u) return (unsigned short)sign;               // below half the smallest subnormal
    const unsigned int e = absx >> 23, m = (absx & 0x7fffffu) | 0x800000u;
    const unsigned int shift = 126 - e;  // 14..24
    unsigned int r = m >> shift;
    const unsigned int rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return (unsigned short)(sign | r);
  }
  unsigned int r = ((absx >> 13) - (112u << 10));
  const unsigned int rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return (unsigned short)(sign | r);
}

inline float recperf_bits_to_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Warp shuffles: the runner executes a warp's lanes as fibers in lock-step (cpu_shim.cpp); a
// lane that reaches __shfl_sync deposits its value and waits until every lane of the mask has
// arrived at its own call, then reads lane srcLane's value.
unsigned long long recperf_cpu_shfl(unsigned int mask, unsigned long long bits, int src_lane, int width);
template <typename T>
inline T __shfl_sync(unsigned int mask, T var, int srcLane, int width = 32) {
  static_assert(sizeof(T) <= 8, "__shfl_sync of a type wider than 8 bytes");
  unsigned long long bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = recperf_cpu_shfl(mask, bits, srcLane, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

// A failed check ends the current thread before any read (see recperf_cpu_launch in cpu_shim.cpp).
struct recperf_index_fault {
  long long position;
};
struct recperf_assert_fault {
  const char* condition;
};

template <typename I>
inline void recperf_cpu_check_index(I idx, long long num_rows, long long position) {
  if ((long long)idx < 0 || (long long)idx >= num_rows) throw recperf_index_fault{position};
}

[[noreturn]] inline void recperf_cpu_assert_fail(const char* condition) { throw recperf_assert_fault{condition}; }
