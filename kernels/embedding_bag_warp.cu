// recperf `warp` variant: one warp per bag, the 32 lanes across the row, each lane loading
// RECPERF_VEC_BYTES per row with one aligned vector load (16 B = float4 / 8 halves by default;
// the launcher picks the widest width that divides the row and keeps the loads aligned). Rows
// wider than 32 vectors are walked in column chunks. Launch: 1-D blocks of block_size threads,
// grid sized to the GPU (the launcher's grid_size), grid-stride over bags.
// Lanes share nothing (each reads the index itself; the loads broadcast), so no warp shuffles.
// The register ring (RECPERF_PREFETCH_DISTANCE = P > 0) keeps P + 1 slots so that it survives
// compilation (issue 9): see embedding_bag_pytorch.cu.
#include "recperf_common.cuh"

#ifndef RECPERF_VEC_BYTES
#define RECPERF_VEC_BYTES 16
#endif

#define RECPERF_VEC (RECPERF_VEC_BYTES / (int)sizeof(scalar_t))

#if RECPERF_VEC_BYTES == 16
typedef uint4 recperf_raw_t;
#elif RECPERF_VEC_BYTES == 8
typedef uint2 recperf_raw_t;
#elif RECPERF_VEC_BYTES == 4
typedef unsigned int recperf_raw_t;
#elif RECPERF_VEC_BYTES == 2
typedef unsigned short recperf_raw_t;
#else
#error "RECPERF_VEC_BYTES must be 16, 8, 4 or 2"
#endif

static_assert(RECPERF_VEC >= 1, "RECPERF_VEC_BYTES is smaller than one element");

union recperf_vec_u {
  recperf_raw_t raw;
  scalar_t s[RECPERF_VEC];
};

__device__ __forceinline__ void recperf_accumulate(float* acc, recperf_raw_t raw, float scale) {
  recperf_vec_u u;
  u.raw = raw;
#pragma unroll
  for (int k = 0; k < RECPERF_VEC; ++k) {
    acc[k] += scale * recperf_to_acc(u.s[k]);
  }
}

// Row `emb`'s vector for this lane's columns; the index is checked first when the check is inline.
__device__ __forceinline__ recperf_raw_t recperf_warp_load(const index_t* input, const scalar_t* weight_col,
                                                           recperf_i64 emb, recperf_i64 featureSize,
                                                           recperf_i64 numRows) {
  const index_t idx = input[emb];
#if RECPERF_BOUNDS_INLINE
  RECPERF_INDEX_ASSERT(idx, numRows, emb);
#endif
  return *reinterpret_cast<const recperf_raw_t*>(weight_col + static_cast<recperf_i64>(idx) * featureSize);
}

__device__ __forceinline__ void recperf_warp_body(
    const index_t* __restrict__ input, const index_t* __restrict__ offsets, const scalar_t* __restrict__ weight,
    scalar_t* __restrict__ output, recperf_i64 numIndices, recperf_i64 numBags, recperf_i64 featureSize,
    int mode, const scalar_t* __restrict__ per_sample_weights, recperf_i64 numRows, int l2_prefetch_distance) {
  const int lane = threadIdx.x & 31;
  const recperf_i64 warpsPerBlock = blockDim.x >> 5;
  const recperf_i64 warpStride = (recperf_i64)gridDim.x * warpsPerBlock;
  for (recperf_i64 bag = (recperf_i64)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); bag < numBags;
       bag += warpStride) {
    const recperf_i64 begin = offsets[bag];
    const recperf_i64 end = (bag < numBags - 1) ? (recperf_i64)offsets[bag + 1] : numIndices;
    for (recperf_i64 col = (recperf_i64)lane * RECPERF_VEC; col < featureSize; col += 32 * RECPERF_VEC) {
      const scalar_t* weight_col = weight + col;
      float acc[RECPERF_VEC];
#pragma unroll
      for (int k = 0; k < RECPERF_VEC; ++k) acc[k] = 0.f;
#if RECPERF_PREFETCH_DISTANCE == 0
      for (recperf_i64 emb = begin; emb < end; ++emb) {
#if RECPERF_PREFETCH_L2HINT
        {  // L2 hint for the row l2_prefetch_distance ahead (skipped for an invalid index)
          const recperf_i64 ahead = emb + l2_prefetch_distance;
          if (ahead < end) {
            const index_t a = input[ahead];
            if ((recperf_u64)(recperf_i64)a < (recperf_u64)numRows) {
              recperf_prefetch_l2(weight_col + static_cast<recperf_i64>(a) * featureSize);
            }
          }
        }
#endif
        const recperf_raw_t v = recperf_warp_load(input, weight_col, emb, featureSize, numRows);
        recperf_accumulate(acc, v, per_sample_weights ? recperf_to_acc(per_sample_weights[emb]) : 1.f);
      }
#else
      // Register ring of P + 1 slots (see embedding_bag_pytorch.cu): at the top of the main loop
      // slots 0..P-1 hold rows base..base+P-1 (where they exist) and slot P is free; step j
      // refills the free slot (j + P) % (P + 1) with row base + j + P under a predicate, then
      // uses slot j. Every slot keeps one register, so P + 1 row loads can be in flight.
      constexpr int RING = RECPERF_PREFETCH_DISTANCE + 1;
      recperf_raw_t ring[RING];
#pragma unroll
      for (int j = 0; j < RING; ++j) ring[j] = recperf_raw_t();
#pragma unroll
      for (int j = 0; j < RECPERF_PREFETCH_DISTANCE; ++j) {
        if (begin + j < end) {
          ring[j] = recperf_warp_load(input, weight_col, begin + j, featureSize, numRows);
        }
      }
      recperf_i64 base = begin;
      for (; base + RING <= end; base += RING) {
#pragma unroll
        for (int j = 0; j < RING; ++j) {
          const recperf_i64 emb = base + j;
          const int free_slot = (j + RECPERF_PREFETCH_DISTANCE) % RING;
          if (emb + RECPERF_PREFETCH_DISTANCE < end) {  // guarded load, not a branch
            ring[free_slot] =
                recperf_warp_load(input, weight_col, emb + RECPERF_PREFETCH_DISTANCE, featureSize, numRows);
          }
          recperf_accumulate(acc, ring[j], per_sample_weights ? recperf_to_acc(per_sample_weights[emb]) : 1.f);
        }
      }
      // Tail: at most P rows left, all already in slots 0..P-1.
#pragma unroll
      for (int j = 0; j < RECPERF_PREFETCH_DISTANCE; ++j) {
        const recperf_i64 emb = base + j;
        if (emb < end) {
          recperf_accumulate(acc, ring[j], per_sample_weights ? recperf_to_acc(per_sample_weights[emb]) : 1.f);
        }
      }
#endif
      const recperf_i64 n = end - begin;
      const float scale = (mode == RECPERF_MODE_MEAN && n > 0) ? 1.f / (float)n : 1.f;
      scalar_t* out = output + bag * featureSize + col;
#pragma unroll
      for (int k = 0; k < RECPERF_VEC; ++k) recperf_from_acc(out + k, acc[k] * scale);
    }
  }
}

#define RECPERF_WARP_ENTRY(ATTR, SUFFIX)                                                                      \
  extern "C" __global__ void ATTR recperf_embedding_bag_warp##SUFFIX(                                          \
      const index_t* __restrict__ input, const index_t* __restrict__ offsets,                                  \
      const scalar_t* __restrict__ weight, scalar_t* __restrict__ output, recperf_i64 numIndices,              \
      recperf_i64 numBags, recperf_i64 featureSize, int mode, const scalar_t* __restrict__ per_sample_weights, \
      recperf_i64 numRows, int l2_prefetch_distance) {                                                         \
    recperf_warp_body(input, offsets, weight, output, numIndices, numBags, featureSize, mode,                  \
                      per_sample_weights, numRows, l2_prefetch_distance);                                      \
  }
#define RECPERF_WARP_ENTRY_CAPPED(N) RECPERF_WARP_ENTRY(__maxnreg__(N), _cap##N)
RECPERF_ENTRIES(RECPERF_WARP_ENTRY)
