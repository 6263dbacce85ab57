// recperf auxiliary kernels, launched before the lookup kernel when asked:
//   recperf_check_indices: the "separate" bounds check, a validation pass that records the
//     first out-of-range position (atomicMin) so the lookup kernel needs no in-loop check;
//   recperf_pin_rows_evict_last: the seed artifact's L2 pinning pass, prefetch.global.L2::evict_last
//     over every 128-byte line of the hot rows (row ids in hot_rows, or rows 0..num_hot-1 when
//     hot_rows is null, i.e. after a frequency-ordered remap).
#include "recperf_common.cuh"

extern "C" __global__ void recperf_check_indices(const index_t* __restrict__ input, recperf_i64 numIndices,
                                                 recperf_i64 numRows, recperf_u64* first_bad) {
  const recperf_i64 stride = (recperf_i64)gridDim.x * blockDim.x;
  for (recperf_i64 i = (recperf_i64)blockIdx.x * blockDim.x + threadIdx.x; i < numIndices; i += stride) {
    if ((recperf_u64)(recperf_i64)input[i] >= (recperf_u64)numRows) {
      atomicMin(first_bad, (recperf_u64)i);
    }
  }
}

// L2 line size of sm_80/sm_90 (prefetch acts on the line holding the address).
#define RECPERF_L2_LINE_BYTES 128

extern "C" __global__ void recperf_pin_rows_evict_last(const char* __restrict__ weight,
                                                       const index_t* __restrict__ hot_rows, recperf_i64 numHot,
                                                       recperf_i64 rowBytes) {
  const recperf_i64 linesPerRow = (rowBytes + RECPERF_L2_LINE_BYTES - 1) / RECPERF_L2_LINE_BYTES;
  const recperf_i64 total = numHot * linesPerRow;
  const recperf_i64 stride = (recperf_i64)gridDim.x * blockDim.x;
  for (recperf_i64 i = (recperf_i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const recperf_i64 h = i / linesPerRow;
    const recperf_i64 line = i - h * linesPerRow;
    const recperf_i64 row = hot_rows ? (recperf_i64)hot_rows[h] : h;
    recperf_prefetch_l2_evict_last(weight + row * rowBytes + line * RECPERF_L2_LINE_BYTES);
  }
}

// Frequency-ordered remap for the access-policy window: the table is stored hottest row first,
// so the persisting window is one contiguous range; this pass rewrites the bag's indices through
// row_map (original row -> stored row). An out-of-range index is copied unchanged, so the
// lookup's own check (or the validation pass) still reports it and nothing is read out of bounds.
extern "C" __global__ void recperf_remap_indices(const index_t* __restrict__ input, index_t* __restrict__ out,
                                                 recperf_i64 numIndices, const index_t* __restrict__ row_map,
                                                 recperf_i64 numRows) {
  const recperf_i64 stride = (recperf_i64)gridDim.x * blockDim.x;
  for (recperf_i64 i = (recperf_i64)blockIdx.x * blockDim.x + threadIdx.x; i < numIndices; i += stride) {
    const index_t idx = input[i];
    out[i] = ((recperf_u64)(recperf_i64)idx < (recperf_u64)numRows) ? row_map[idx] : idx;
  }
}
