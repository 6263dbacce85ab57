// recperf `tbe` variant: the structure of FBGEMM's table-batched embedding (TBE) forward for
// pooled sum/mean, written from fbgemm_gpu/codegen/training/forward/
// embedding_forward_split_kernel_template.cu (github.com/pytorch/FBGEMM, commit 71d6f8b2,
// 2026-08-21): the `dense` instantiation of {{ mdesc }}_embedding_codegen_forward_*_kernel
// (no cache), CUDA path (not ROCm), full-warp thread groups (kThreadGroupSize = 32).
//
// What is kept: one warp per bag (grid-stride over bags, block (32, block_size / 32) as
// FBGEMM's dim3(kThreadGroupSize, kForwardMaxThreads / kThreadGroupSize)); for every 32 of the
// bag's indices each lane loads one (`indices[indices_start + l]`, 0 past the bag's end) and
// computes its row offset (`idx * D`, 64-bit); the lanes then walk the 32 rows in order, taking
// each row's offset from lane j with __shfl_sync; each lane reads its 4-element slices of the
// row (`(i * 32 + lane) * 4`, i < kMaxVecsPerThread) with one vector load (Vec4T: float4 for
// fp32 tables, 8 bytes = 4 halves for fp16, converted to fp32) and adds them into fp32
// accumulators; mean pooling scales by 1/L at the end; per-sample weights are loaded with the
// indices and passed by shuffle too (FBGEMM's `weighted` kernel; here a second instantiation
// chosen at run time, as FBGEMM's host code does).
//
// Every difference: one table per launch (FBGEMM batches T tables; b_t = table x bag, with
// D_offsets/weights_offsets per table); no cache/UVM placement, no VBE, no nobag path, no
// global weight decay; the output is (B, D) in the table's dtype (FBGEMM: [B][total_D], any
// output dtype); offsets are PyTorch's (include_last_offset = False: the last bag ends at the
// number of indices); kMaxVecsPerThread is RECPERF_TBE_MAX_VECS (FBGEMM dispatches on max_D
// the same way: the smallest v with D <= v * 128); D must be a multiple of 4 (FBGEMM's rule);
// FBGEMM checks indices in a separate kernel (bounds_check_indices, our "separate"), and
// bounds_check = "inline" here checks each lane's index where it is loaded (ours, not FBGEMM's).
#include "recperf_common.cuh"

#ifndef RECPERF_TBE_MAX_VECS
#define RECPERF_TBE_MAX_VECS 1
#endif
#if RECPERF_ON_DEVICE && (RECPERF_PREFETCH_DISTANCE > 0 || RECPERF_PREFETCH_L2HINT)
#error "tbe keeps several rows in flight by its own structure: no other prefetch"
#endif

#define RECPERF_TBE_GROUP 32
#define RECPERF_TBE_VEC_WIDTH 4

struct recperf_acc4 {
  float x, y, z, w;
};

#if RECPERF_DTYPE_F16
typedef uint2 recperf_tbe_raw_t;  // 4 halves
#else
typedef uint4 recperf_tbe_raw_t;  // 4 floats
#endif

__device__ __forceinline__ recperf_acc4 recperf_tbe_load(const scalar_t* p) {
  const recperf_tbe_raw_t raw = *reinterpret_cast<const recperf_tbe_raw_t*>(p);
  recperf_acc4 v;
#if RECPERF_DTYPE_F16
  v.x = recperf_h2f((unsigned short)(raw.x & 0xffffu));
  v.y = recperf_h2f((unsigned short)(raw.x >> 16));
  v.z = recperf_h2f((unsigned short)(raw.y & 0xffffu));
  v.w = recperf_h2f((unsigned short)(raw.y >> 16));
#else
  v.x = recperf_bits_to_float(raw.x);
  v.y = recperf_bits_to_float(raw.y);
  v.z = recperf_bits_to_float(raw.z);
  v.w = recperf_bits_to_float(raw.w);
#endif
  return v;
}

template <bool WEIGHTED>
__device__ __forceinline__ void recperf_tbe_body(const index_t* __restrict__ indices,
                                                 const index_t* __restrict__ offsets,
                                                 const scalar_t* __restrict__ weights, scalar_t* __restrict__ output,
                                                 recperf_i64 numIndices, recperf_i64 B, recperf_i64 D, int mode,
                                                 const scalar_t* __restrict__ indice_weights, recperf_i64 numRows) {
  const unsigned int shfl_sync_mask = 0xffffffffu;
  for (recperf_i64 b = (recperf_i64)blockIdx.x * blockDim.y + threadIdx.y; b < B;
       b += (recperf_i64)blockDim.y * gridDim.x) {
    const recperf_i64 indices_start = offsets[b];
    const int L = (int)(((b < B - 1) ? (recperf_i64)offsets[b + 1] : numIndices) - indices_start);
    const float inv_L = (mode == RECPERF_MODE_MEAN && L != 0) ? 1.0f / (float)L : 1.0f;
    recperf_acc4 accumulators[RECPERF_TBE_MAX_VECS];
#pragma unroll
    for (int i = 0; i < RECPERF_TBE_MAX_VECS; ++i) accumulators[i] = recperf_acc4{0.f, 0.f, 0.f, 0.f};

    // Iterate over each kThreadGroupSize-sized subset of L indices in the bag
    for (int l_start = 0; l_start < L; l_start += RECPERF_TBE_GROUP) {
      // Determine the L index that this thread will load data from in cooperative load
      const int l = l_start + (int)threadIdx.x;
      // Cooperatively load the indices
      const index_t idx = l < L ? indices[indices_start + l] : 0;
#if RECPERF_BOUNDS_INLINE
      if (l < L) {
        RECPERF_INDEX_ASSERT(idx, numRows, indices_start + l);
      }
#endif
      const recperf_i64 offset_idx = static_cast<recperf_i64>(idx) * D;
      float idx_weight = 0.f;
      if (WEIGHTED) {
        idx_weight = l < L ? recperf_to_acc(indice_weights[indices_start + l]) : 0.f;
      }
      // Iterate over kThreadGroupSize indices
      for (int j = 0; j < RECPERF_TBE_GROUP && l_start + j < L; ++j) {
        // Load index from thread j in the group
        const recperf_i64 offset_idx_j = __shfl_sync(shfl_sync_mask, offset_idx, j);
        float idx_weight_j = 1.f;
        if (WEIGHTED) {
          idx_weight_j = __shfl_sync(shfl_sync_mask, idx_weight, j);
        }
        const scalar_t* row = weights + offset_idx_j;
        // Iterate over the row in the weights table, in 4-element strides
#pragma unroll
        for (int i = 0; i < RECPERF_TBE_MAX_VECS &&
                        (i * RECPERF_TBE_GROUP + (int)threadIdx.x) * RECPERF_TBE_VEC_WIDTH < D;
             ++i) {
          const int d = (i * RECPERF_TBE_GROUP + (int)threadIdx.x) * RECPERF_TBE_VEC_WIDTH;
          const recperf_acc4 s = recperf_tbe_load(row + d);
          if (WEIGHTED) {
            accumulators[i].x += s.x * idx_weight_j;
            accumulators[i].y += s.y * idx_weight_j;
            accumulators[i].z += s.z * idx_weight_j;
            accumulators[i].w += s.w * idx_weight_j;
          } else {
            accumulators[i].x += s.x;
            accumulators[i].y += s.y;
            accumulators[i].z += s.z;
            accumulators[i].w += s.w;
          }
        }
      }
    }
    scalar_t* out = output + b * D;
#pragma unroll
    for (int i = 0; i < RECPERF_TBE_MAX_VECS; ++i) {
      const int d = (i * RECPERF_TBE_GROUP + (int)threadIdx.x) * RECPERF_TBE_VEC_WIDTH;
      if (d < D) {
        recperf_from_acc(out + d, accumulators[i].x * inv_L);
        recperf_from_acc(out + d + 1, accumulators[i].y * inv_L);
        recperf_from_acc(out + d + 2, accumulators[i].z * inv_L);
        recperf_from_acc(out + d + 3, accumulators[i].w * inv_L);
      }
    }
  }
}

#define RECPERF_TBE_ENTRY(ATTR, SUFFIX)                                                                          \
  extern "C" __global__ void ATTR recperf_embedding_bag_tbe##SUFFIX(                                              \
      const index_t* __restrict__ indices, const index_t* __restrict__ offsets,                                    \
      const scalar_t* __restrict__ weights, scalar_t* __restrict__ output, recperf_i64 numIndices, recperf_i64 B, \
      recperf_i64 D, int mode, const scalar_t* __restrict__ indice_weights, recperf_i64 numRows) {                \
    if (indice_weights) {                                                                                         \
      recperf_tbe_body<true>(indices, offsets, weights, output, numIndices, B, D, mode, indice_weights, numRows); \
    } else {                                                                                                      \
      recperf_tbe_body<false>(indices, offsets, weights, output, numIndices, B, D, mode, indice_weights,          \
                              numRows);                                                                           \
    }                                                                                                             \
  }
#define RECPERF_TBE_ENTRY_CAPPED(N) RECPERF_TBE_ENTRY(__maxnreg__(N), _cap##N)
RECPERF_ENTRIES(RECPERF_TBE_ENTRY)
