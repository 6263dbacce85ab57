// recperf `pytorch` variant: a replica of PyTorch 2.1's EmbeddingBag_updateOutputKernel_sum_mean
// (aten/src/ATen/native/cuda/EmbeddingBag.cu, v2.1.0), the forward of nn.EmbeddingBag for
// mode sum/mean. Launch as PyTorch does: block (32, block_size / 32), fixed grid of 1024
// blocks; each thread owns one feature column of one bag ("chunk") and walks all the bag's
// indices with scalar loads; side outputs offset2bag and bag_size.
//
// Differences from the original, all compile-time options whose default (0) is the original:
//   RECPERF_PREFETCH_DISTANCE > 0: rows loaded ahead into a register ring (below);
//   RECPERF_PREFETCH_L2HINT = 1:   prefetch.global.L2 hints l2_prefetch_distance rows ahead;
//   RECPERF_BOUNDS_INLINE = 0:     the in-loop CUDA_KERNEL_ASSERT removed (checked before, or not);
//   RECPERF_BOUNDS_PRELOOP = 1:    `pytorch-current` with the inline check: PyTorch's current
//                                  kernel (after PR #167834, e.g. cyyever/pytorch 0cecc5c1,
//                                  same file): each thread first ORs `idx < 0 || idx >= numRows`
//                                  over the bag's indices in a separate loop, asserts once, then
//                                  runs the main loop with no check; the main loop reads
//                                  input[emb] once into a local (`input_idx`), as here;
//   RECPERF_REGISTER_CAP > 0:      __maxnreg__ (the seed paper's "OptMT" uses -maxrregcount 42).
//
// The register ring (issue 9: the prefetch has to survive compilation). The ring holds the raw
// loaded values and the pad flag of each slot; the padding select, the bag-size count and the
// accumulation happen when a slot is used, and a slot's refill (row emb + P) is issued before
// its old value is used, guarded by a predicate (emb + P < end) rather than a branch around
// it. So P + 1 row loads can be in flight per warp. A first version selected at load time
// (`pad ? 0 : value`) and refilled under a branch: the compiler waited for every load at
// once (one row in flight); it is kept as tests/fixtures/embedding_bag_pytorch_ring_before.cu.
#include "recperf_common.cuh"

#ifndef RECPERF_BOUNDS_PRELOOP
#define RECPERF_BOUNDS_PRELOOP 0
#endif
#if RECPERF_BOUNDS_PRELOOP && !RECPERF_BOUNDS_INLINE
#error "RECPERF_BOUNDS_PRELOOP is the in-kernel check of pytorch-current: it needs RECPERF_BOUNDS_INLINE=1"
#endif
#if RECPERF_ON_DEVICE && RECPERF_BOUNDS_PRELOOP && (RECPERF_PREFETCH_DISTANCE > 0 || RECPERF_PREFETCH_L2HINT)
#error "pytorch-current is PyTorch's kernel as shipped: no prefetch"
#endif

#if RECPERF_PREFETCH_DISTANCE > 0
// The raw element of row `emb` for this thread's column and whether the row is the padding
// index; no select here (it happens when the slot is used). The index is checked before the
// read when the check is inline.
__device__ __forceinline__ scalar_t recperf_pytorch_fetch(const index_t* input, const scalar_t* weightFeat,
                                                           recperf_i64 emb, recperf_i64 weight_stride0,
                                                           index_t padding_idx, recperf_i64 numRows, bool& pad) {
  const index_t idx = input[emb];
#if RECPERF_BOUNDS_INLINE
  RECPERF_PYTORCH_INDEX_ASSERT(idx, numRows, emb);
#endif
  pad = (idx == padding_idx);
  return weightFeat[static_cast<recperf_i64>(idx) * weight_stride0];
}

// Use one slot: the padding select, the bag-size count, the accumulation, offset2bag.
__device__ __forceinline__ void recperf_pytorch_use(scalar_t raw, bool pad, recperf_i64 emb,
                                                    const scalar_t* per_sample_weights,
                                                    recperf_i64 per_sample_weights_stride, recperf_i64 featureDim,
                                                    index_t* offset2bag, recperf_i64 bag, float& weightFeatSum,
                                                    recperf_i64& bag_size_) {
  const scalar_t weightValue = pad ? static_cast<scalar_t>(0) : raw;
  if (per_sample_weights) {
    const float scaleWeightBy = recperf_to_acc(per_sample_weights[emb * per_sample_weights_stride]);
    weightFeatSum += scaleWeightBy * recperf_to_acc(weightValue);
  } else {
    weightFeatSum += recperf_to_acc(weightValue);
  }
  bag_size_ += pad ? 0 : 1;
  if (featureDim == 0) {
    offset2bag[emb] = bag;
  }
}
#endif

__device__ __forceinline__ void recperf_pytorch_body(
    const index_t* input, const index_t* offsets, const scalar_t* weight, scalar_t* output,
    index_t* offset2bag, recperf_i64 numIndices, recperf_i64 numBags, recperf_i64 featureSize,
    recperf_i64 weight_stride0, recperf_i64 weight_stride1, int mode, index_t* bag_size,
    const scalar_t* per_sample_weights, recperf_i64 per_sample_weights_stride, index_t padding_idx,
    recperf_i64 numRows, int l2_prefetch_distance) {
  // the strategy here is that each bag x feature is handled by a single thread
  typedef float accscalar_t;
  const recperf_i64 chunksPerBag = (featureSize + (recperf_i64)blockDim.x - 1) / (recperf_i64)blockDim.x;
  const recperf_i64 numChunks = numBags * chunksPerBag;
  const recperf_i64 chunkOffset = blockIdx.x * blockDim.y + threadIdx.y;
  const recperf_i64 chunkStride = gridDim.x * blockDim.y;

  for (recperf_i64 chunk = chunkOffset; chunk < numChunks; chunk += chunkStride) {
    recperf_i64 featureDim = (chunk % chunksPerBag) * blockDim.x + threadIdx.x;
    if (featureDim < featureSize) {
      recperf_i64 bag = chunk / chunksPerBag;
      const scalar_t* weightFeat = weight + featureDim * weight_stride1;
      recperf_i64 begin = bag == 0 ? 0 : offsets[bag];  // forces first offset to be 0 instead of asserting on it
      recperf_i64 end = (bag < numBags - 1) ? (offsets[bag + 1]) : numIndices;
      RECPERF_KERNEL_ASSERT(end >= begin);
      accscalar_t weightFeatSum = 0;
      recperf_i64 bag_size_ = 0;
#if RECPERF_BOUNDS_PRELOOP
      // PyTorch's current kernel: a separate validation loop (no early exit), one assert.
      bool has_invalid_index = false;
      for (recperf_i64 emb = begin; emb < end; emb++) {
        const index_t input_idx = input[emb];
        has_invalid_index = has_invalid_index || (input_idx < 0 || input_idx >= numRows);
      }
      RECPERF_PYTORCH_PRELOOP_ASSERT(has_invalid_index, input, begin, end, numRows);
#endif
#if RECPERF_PREFETCH_DISTANCE == 0
      for (recperf_i64 emb = begin; emb < end; emb++) {
#if RECPERF_PREFETCH_L2HINT
        {  // L2 hint for the row l2_prefetch_distance ahead (skipped for an invalid index)
          const recperf_i64 ahead = emb + l2_prefetch_distance;
          if (ahead < end) {
            const index_t a = input[ahead];
            if ((recperf_u64)(recperf_i64)a < (recperf_u64)numRows) {
              recperf_prefetch_l2(weightFeat + static_cast<recperf_i64>(a) * weight_stride0);
            }
          }
        }
#endif
        bool pad = (input[emb] == padding_idx);
#if RECPERF_BOUNDS_INLINE && !RECPERF_BOUNDS_PRELOOP
        RECPERF_PYTORCH_INDEX_ASSERT(input[emb], numRows, emb);
#endif
        const recperf_i64 weightRow = static_cast<recperf_i64>(input[emb]) * weight_stride0;
        scalar_t weightValue = weightFeat[weightRow];
        weightValue = pad ? static_cast<scalar_t>(0) : weightValue;
        if (per_sample_weights) {
          accscalar_t scaleWeightBy =
              recperf_to_acc(per_sample_weights[emb * per_sample_weights_stride]);
          weightFeatSum += scaleWeightBy * recperf_to_acc(weightValue);
        } else {
          weightFeatSum += recperf_to_acc(weightValue);
        }
        bag_size_ += pad ? 0 : 1;

        if (featureDim == 0) {
          offset2bag[emb] = bag;
        }
      }
#else
      // Register ring of P + 1 slots. At the top of the main loop slots 0..P-1 hold rows
      // base..base+P-1 (raw element and pad flag, where the row exists) and slot P is free. Step j
      // refills the free slot (j + P) % (P + 1) with row base + j + P, then uses slot j; so the
      // loop handles P + 1 rows and every slot keeps one register (no moves between slots, which
      // would make the compiler wait for a load early).
      constexpr int RING = RECPERF_PREFETCH_DISTANCE + 1;
      scalar_t ring[RING];
      bool ring_pad[RING];
#pragma unroll
      for (int j = 0; j < RING; ++j) {
        ring[j] = static_cast<scalar_t>(0);
        ring_pad[j] = true;
      }
#pragma unroll
      for (int j = 0; j < RECPERF_PREFETCH_DISTANCE; ++j) {
        if (begin + j < end) {
          ring[j] = recperf_pytorch_fetch(input, weightFeat, begin + j, weight_stride0, padding_idx, numRows,
                                          ring_pad[j]);
        }
      }
      recperf_i64 base = begin;
      for (; base + RING <= end; base += RING) {
#pragma unroll
        for (int j = 0; j < RING; ++j) {
          const recperf_i64 emb = base + j;
          const int free_slot = (j + RECPERF_PREFETCH_DISTANCE) % RING;
          if (emb + RECPERF_PREFETCH_DISTANCE < end) {  // guarded load, not a branch
            ring[free_slot] = recperf_pytorch_fetch(input, weightFeat, emb + RECPERF_PREFETCH_DISTANCE,
                                                    weight_stride0, padding_idx, numRows, ring_pad[free_slot]);
          }
          recperf_pytorch_use(ring[j], ring_pad[j], emb, per_sample_weights, per_sample_weights_stride,
                              featureDim, offset2bag, bag, weightFeatSum, bag_size_);
        }
      }
      // Tail: at most P rows left, all already in slots 0..P-1.
#pragma unroll
      for (int j = 0; j < RECPERF_PREFETCH_DISTANCE; ++j) {
        const recperf_i64 emb = base + j;
        if (emb < end) {
          recperf_pytorch_use(ring[j], ring_pad[j], emb, per_sample_weights, per_sample_weights_stride,
                              featureDim, offset2bag, bag, weightFeatSum, bag_size_);
        }
      }
#endif
      if (mode == RECPERF_MODE_MEAN) {
        if (bag_size_ != 0) {
          weightFeatSum = weightFeatSum / static_cast<accscalar_t>(bag_size_);
        }
      }
      bag_size[bag] = bag_size_;
      recperf_from_acc(&(output + bag * featureSize)[featureDim], weightFeatSum);
    }
  }
}

#define RECPERF_PYTORCH_ENTRY(ATTR, SUFFIX)                                                                   \
  extern "C" __global__ void ATTR recperf_embedding_bag_pytorch##SUFFIX(                                       \
      const index_t* input, const index_t* offsets, const scalar_t* weight, scalar_t* output,                  \
      index_t* offset2bag, recperf_i64 numIndices, recperf_i64 numBags, recperf_i64 featureSize,               \
      recperf_i64 weight_stride0, recperf_i64 weight_stride1, int mode, index_t* bag_size,                     \
      const scalar_t* per_sample_weights, recperf_i64 per_sample_weights_stride, index_t padding_idx,          \
      recperf_i64 numRows, int l2_prefetch_distance) {                                                         \
    recperf_pytorch_body(input, offsets, weight, output, offset2bag, numIndices, numBags, featureSize,         \
                         weight_stride0, weight_stride1, mode, bag_size, per_sample_weights,                   \
                         per_sample_weights_stride, padding_idx, numRows, l2_prefetch_distance);               \
  }
#define RECPERF_PYTORCH_ENTRY_CAPPED(N) RECPERF_PYTORCH_ENTRY(__maxnreg__(N), _cap##N)
RECPERF_ENTRIES(RECPERF_PYTORCH_ENTRY)
