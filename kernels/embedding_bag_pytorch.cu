// recperf `pytorch` variant: a replica of PyTorch 2.1's EmbeddingBag_updateOutputKernel_sum_mean
// (aten/src/ATen/native/cuda/EmbeddingBag.cu, v2.1.0), the forward of nn.EmbeddingBag for
// mode sum/mean. Launch as PyTorch does: block (32, block_size / 32), fixed grid of 1024
// blocks; each thread owns one feature column of one bag ("chunk") and walks all the bag's
// indices with scalar loads; side outputs offset2bag and bag_size.
//
// Differences from the original, all compile-time options whose default (0) is the original:
//   RECPERF_PREFETCH_DISTANCE > 0: rows loaded ahead into a register ring;
//   RECPERF_PREFETCH_L2HINT = 1:   prefetch.global.L2 hints l2_prefetch_distance rows ahead;
//   RECPERF_BOUNDS_INLINE = 0:     the in-loop CUDA_KERNEL_ASSERT removed (checked before, or not);
//   RECPERF_REGISTER_CAP > 0:      __maxnreg__ (the seed paper's "OptMT" uses -maxrregcount 42).
#include "recperf_common.cuh"

#if RECPERF_PREFETCH_DISTANCE > 0
// Load row `emb`'s element for this thread's column (zero for padding), counting the bag size
// as PyTorch does (padding rows do not count).
__device__ __forceinline__ scalar_t recperf_pytorch_load(const index_t* input, const scalar_t* weightFeat,
                                                          recperf_i64 emb, recperf_i64 weight_stride0,
                                                          index_t padding_idx, recperf_i64 numRows,
                                                          recperf_i64& bag_size_) {
  const index_t idx = input[emb];
  const bool pad = (idx == padding_idx);
#if RECPERF_BOUNDS_INLINE
  RECPERF_PYTORCH_INDEX_ASSERT(idx, numRows, emb);
#endif
  const recperf_i64 weightRow = static_cast<recperf_i64>(idx) * weight_stride0;
  scalar_t weightValue = weightFeat[weightRow];
  bag_size_ += pad ? 0 : 1;
  return pad ? static_cast<scalar_t>(0) : weightValue;
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
#if RECPERF_BOUNDS_INLINE
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
      // Register ring: ring[j] holds row (base + j)'s element; after use it is refilled with
      // row (base + j + PREFETCH_DISTANCE). The inner loop is unrolled so the ring lives in
      // registers.
      scalar_t ring[RECPERF_PREFETCH_DISTANCE];
#pragma unroll
      for (int j = 0; j < RECPERF_PREFETCH_DISTANCE; ++j) {
        if (begin + j < end) {
          ring[j] = recperf_pytorch_load(input, weightFeat, begin + j, weight_stride0, padding_idx, numRows,
                                         bag_size_);
        }
      }
      for (recperf_i64 base = begin; base < end; base += RECPERF_PREFETCH_DISTANCE) {
#pragma unroll
        for (int j = 0; j < RECPERF_PREFETCH_DISTANCE; ++j) {
          const recperf_i64 emb = base + j;
          if (emb < end) {
            const scalar_t weightValue = ring[j];
            if (emb + RECPERF_PREFETCH_DISTANCE < end) {
              ring[j] = recperf_pytorch_load(input, weightFeat, emb + RECPERF_PREFETCH_DISTANCE, weight_stride0,
                                             padding_idx, numRows, bag_size_);
            }
            if (per_sample_weights) {
              accscalar_t scaleWeightBy =
                  recperf_to_acc(per_sample_weights[emb * per_sample_weights_stride]);
              weightFeatSum += scaleWeightBy * recperf_to_acc(weightValue);
            } else {
              weightFeatSum += recperf_to_acc(weightValue);
            }
            if (featureDim == 0) {
              offset2bag[emb] = bag;
            }
          }
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
