"""CUDA sources of the microbenchmarks (written for recperf; modelled on the published
gpu-benches *measurements*, whose code is not used).

- ``chase``: one block of 64 threads follows one cyclic chain of absolute 8-byte pointers,
  one slot every 64 bytes; every step is one dependent load. Thread 0 reads ``clock64()``
  around the timed steps, so the result is in SM cycles whatever the clock.
- ``stream_read``: one 8-byte load per thread; the dynamic shared memory given at launch
  (the "spoiler") fixes how many blocks fit on an SM.
- ``l2_read``: blocks of 1024 threads each sum one 512 KiB chunk (64 doubles per thread,
  coalesced); block ``b`` reads chunk ``b % chunks``, so the grid cycles over a buffer of
  ``chunks x 512 KiB``.
"""

from __future__ import annotations

__all__ = ["CHASE", "L2_READ", "L2_READ_BLOCK", "L2_READ_PER_THREAD", "STREAM_READ"]

CHASE = r"""
extern "C" __global__ void chase(unsigned long long* start, long long steps,
                                 unsigned long long* sink, long long* cycles) {
    unsigned long long* p = start;
    long long t0 = clock64();
    for (long long n = 0; n < steps; n += 16) {
#pragma unroll
        for (int u = 0; u < 16; ++u) {
            p = reinterpret_cast<unsigned long long*>(*p);
        }
    }
    long long t1 = clock64();
    if (threadIdx.x == 0) {
        cycles[0] = t1 - t0;
    }
    if (reinterpret_cast<unsigned long long>(p) == 1ull) {  // never true: keeps the chain live
        sink[0] = reinterpret_cast<unsigned long long>(p);
    }
}
"""

STREAM_READ = r"""
extern "C" __global__ void stream_read(const double* __restrict__ a, double* __restrict__ sink, long long n) {
    extern __shared__ double spoiler[];
    long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    double v = 0.0;
    if (i < n) {
        v = a[i];
    }
    if (v == 1.2345e300) {  // never true: keeps the load and the shared memory
        spoiler[threadIdx.x] = v;
        __syncthreads();
        sink[0] = spoiler[threadIdx.x ^ 1u];
    }
}
"""

#: threads per block and doubles per thread of ``l2_read``: 1024 x 64 x 8 B = 512 KiB per block
L2_READ_BLOCK = 1024
L2_READ_PER_THREAD = 64

L2_READ = r"""
extern "C" __global__ void l2_read(const double* __restrict__ b, double* __restrict__ sink, long long chunks) {
    const long long chunk = static_cast<long long>(blockIdx.x) % chunks;
    const double* base = b + chunk * (1024LL * 64LL) + threadIdx.x;
    double s = 0.0;
#pragma unroll 8
    for (int k = 0; k < 64; ++k) {
        s += base[k * 1024];
    }
    if (s == 1.2345e300) {  // never true
        sink[0] = s;
    }
}
"""
