// ort_io: onnxruntime sessions with IO binding, for what onnxruntime-node 1.29 cannot do — outputs
// written into host buffers the caller keeps (pinned, reused: K/V leave the GPU at PCIe speed instead
// of the ≈ 1.3 GB/s of a fresh buffer per run, bench/results/h200-egress.md) and values that stay on
// the device between runs. It drives the same libonnxruntime.so.1 that onnxruntime-node loads (with
// the CUDA provider beside it), through the C API only: no link-time dependency on onnxruntime or
// CUDA. The TypeScript side (worker/runtime/native-session.ts) owns the contract and its checks.
//
// Errors come back as exceptions with onnxruntime's message, so its own log says nothing below fatal.
//
// JavaScript API (all synchronous; call it from a worker thread, as the engine does):
//   init(libonnxruntimePath) -> { apiVersion }
//   createSession(model: Uint8Array | string, options) -> session
//       options: { ep: 'cpu' | 'cuda', deviceId, threads, optimization (0|1|2|99), memPattern, cpuArena,
//                  config: [[key, value]...], externalData: [[name, Uint8Array]...] }
//   sessionNames(session) -> { inputs: string[], outputs: string[] }
//   run(session, feeds, outputs) -> [{ name, type, dims, data?: ArrayBuffer, value?: deviceValue }]
//       feed:   { name, type, dims, data: ArrayBufferView } | { name, value: deviceValue }
//       output: { name, into?: { type, dims, data: ArrayBufferView } } | { name, device: true }
//               (device: onnxruntime's memory of the session's provider, host memory on the CPU)
//               (neither: onnxruntime allocates host memory, copied into a new ArrayBuffer)
//   allocHost(bytes) -> { buffer: ArrayBuffer, pinned: boolean }   (cudaHostAlloc when CUDA is loaded)
//   pinHost(view, pin) -> boolean   (cudaHostRegister / Unregister of memory JavaScript owns)
//   releaseSession(session), releaseValue(deviceValue)
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

#include "onnxruntime_c_api.h"

#define MAX_IO 1024
#define MAX_DIMS 8
#define MAX_NAME 256

static const OrtApi* ort = NULL;
static OrtEnv* ort_env = NULL;
static OrtMemoryInfo* cpu_info = NULL;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

// cudaHostAlloc / cudaFreeHost from the CUDA runtime the provider loaded (found lazily).
typedef int (*cuda_host_alloc_fn)(void**, size_t, unsigned int);
typedef int (*cuda_free_host_fn)(void*);
typedef int (*cuda_host_register_fn)(void*, size_t, unsigned int);
typedef int (*cuda_host_unregister_fn)(void*);
typedef int (*cuda_get_last_error_fn)(void);
static cuda_host_alloc_fn cuda_host_alloc = NULL;
static cuda_free_host_fn cuda_free_host = NULL;
static cuda_host_register_fn cuda_host_register = NULL;
static cuda_host_unregister_fn cuda_host_unregister = NULL;
static cuda_get_last_error_fn cuda_get_last_error = NULL;
#define CUDA_HOST_REGISTER_PORTABLE 1
#define CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED 712

typedef struct {
  OrtSession* session;
  OrtMemoryInfo* device_info;  // NULL on the CPU provider
  int released;
} Session;

typedef struct {
  OrtValue* value;
  int released;
} DeviceValue;

// ---- errors -------------------------------------------------------------------------------------

static napi_value throw_error(napi_env e, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static napi_value throw_error(napi_env e, const char* fmt, ...) {
  char message[1024];
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  napi_throw_error(e, "ERR_ORT_IO", message);
  return NULL;
}

// Throws the status's message (prefixed with what failed) and releases it; 1 when it was an error.
static int failed(napi_env e, OrtStatus* status, const char* what) {
  if (!status) return 0;
  throw_error(e, "%s: %s", what, ort->GetErrorMessage(status));
  ort->ReleaseStatus(status);
  return 1;
}

// For calls whose failure changes nothing for the caller (freeing).
static void release_status(OrtStatus* status) {
  if (status) ort->ReleaseStatus(status);
}

#define NAPI_OK(call)                                             \
  do {                                                            \
    if ((call) != napi_ok) {                                      \
      const napi_extended_error_info* info_ = NULL;               \
      napi_get_last_error_info(e, &info_);                        \
      bool pending_ = false;                                      \
      napi_is_exception_pending(e, &pending_);                    \
      if (!pending_)                                              \
        throw_error(e, "%s", info_ && info_->error_message        \
                                 ? info_->error_message           \
                                 : "N-API call failed");          \
      goto fail;                                                  \
    }                                                             \
  } while (0)

// ---- small N-API readers ------------------------------------------------------------------------

static int get_named(napi_env e, napi_value obj, const char* key, napi_value* out) {
  bool has = false;
  if (napi_has_named_property(e, obj, key, &has) != napi_ok || !has) return 0;
  if (napi_get_named_property(e, obj, key, out) != napi_ok) return 0;
  napi_valuetype t;
  napi_typeof(e, *out, &t);
  return t != napi_undefined && t != napi_null;
}

static int get_string(napi_env e, napi_value v, char* buf, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(e, v, buf, size, &len) != napi_ok) return 0;
  return len < size - 1;
}

static int64_t get_int(napi_env e, napi_value obj, const char* key, int64_t fallback) {
  napi_value v;
  int64_t out = fallback;
  if (get_named(e, obj, key, &v)) napi_get_value_int64(e, v, &out);
  return out;
}

static int get_bool(napi_env e, napi_value obj, const char* key, int fallback) {
  napi_value v;
  bool out = fallback;
  if (get_named(e, obj, key, &v)) napi_get_value_bool(e, v, &out);
  return out;
}

// Any ArrayBufferView (typed array, DataView, Buffer): its bytes.
static int get_bytes(napi_env e, napi_value v, void** data, size_t* length) {
  bool is = false;
  napi_is_typedarray(e, v, &is);
  if (is) {
    napi_typedarray_type type;
    size_t count, offset;
    napi_value ab;
    if (napi_get_typedarray_info(e, v, &type, &count, data, &ab, &offset) != napi_ok) return 0;
    static const size_t widths[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 2};
    *length = count * (type < sizeof widths / sizeof *widths ? widths[type] : 1);
    return 1;
  }
  napi_is_dataview(e, v, &is);
  if (is) {
    napi_value ab;
    size_t offset;
    return napi_get_dataview_info(e, v, length, data, &ab, &offset) == napi_ok;
  }
  return 0;
}

static size_t element_bytes(int type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32:
      return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16:
      return 2;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
      return 1;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return 8;
    default:
      return 0;
  }
}

// { type, dims, data } → a tensor over the caller's memory (no copy); sizes checked.
static OrtValue* tensor_over(napi_env e, napi_value spec, const char* name) {
  napi_value v, data_v;
  int64_t dims[MAX_DIMS];
  uint32_t rank = 0;
  int type = (int)get_int(e, spec, "type", 0);
  size_t width = element_bytes(type);
  if (!width) return throw_error(e, "%s: unsupported element type %d", name, type), NULL;
  if (!get_named(e, spec, "dims", &v) || napi_get_array_length(e, v, &rank) != napi_ok || rank > MAX_DIMS)
    return throw_error(e, "%s: dims must be an array of at most %d sizes", name, MAX_DIMS), NULL;
  size_t count = 1;
  for (uint32_t i = 0; i < rank; i++) {
    napi_value d;
    napi_get_element(e, v, i, &d);
    napi_get_value_int64(e, d, &dims[i]);
    if (dims[i] < 0) return throw_error(e, "%s: dimension %u is negative", name, i), NULL;
    count *= (size_t)dims[i];
  }
  void* data = NULL;
  size_t length = 0;
  if (!get_named(e, spec, "data", &data_v) || !get_bytes(e, data_v, &data, &length))
    return throw_error(e, "%s: data must be a typed array", name), NULL;
  if (length != count * width)
    return throw_error(e, "%s: shape needs %zu bytes, the array holds %zu", name, count * width, length), NULL;
  OrtValue* value = NULL;
  OrtStatus* s = ort->CreateTensorWithDataAsOrtValue(cpu_info, count ? data : (void*)&dims, length, dims, rank,
                                                     (ONNXTensorElementDataType)type, &value);
  if (failed(e, s, name)) return NULL;
  return value;
}

// ---- init ---------------------------------------------------------------------------------------

static napi_value Init(napi_env e, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result = NULL;
  char path[4096];
  NAPI_OK(napi_get_cb_info(e, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_string(e, argv[0], path, sizeof path))
    return throw_error(e, "init(path): the path of libonnxruntime.so.1");
  pthread_mutex_lock(&init_lock);
  if (!ort) {
    // The library onnxruntime-node loaded is already mapped: this returns the same instance.
    void* lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
      pthread_mutex_unlock(&init_lock);
      return throw_error(e, "cannot load %s: %s", path, dlerror());
    }
    const OrtApiBase* (*get_base)(void) = (const OrtApiBase* (*)(void))dlsym(lib, "OrtGetApiBase");
    const OrtApi* api = get_base ? get_base()->GetApi(ORT_API_VERSION) : NULL;
    if (!api) {
      pthread_mutex_unlock(&init_lock);
      return throw_error(e, "%s does not offer onnxruntime's C API version %d", path, ORT_API_VERSION);
    }
    OrtStatus* s = api->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "ort_io", &ort_env);
    if (!s) s = api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &cpu_info);
    if (s) {
      throw_error(e, "onnxruntime environment: %s", api->GetErrorMessage(s));
      api->ReleaseStatus(s);
      pthread_mutex_unlock(&init_lock);
      return NULL;
    }
    ort = api;
  }
  pthread_mutex_unlock(&init_lock);
  NAPI_OK(napi_create_object(e, &result));
  napi_value version;
  NAPI_OK(napi_create_int32(e, ORT_API_VERSION, &version));
  NAPI_OK(napi_set_named_property(e, result, "apiVersion", version));
  return result;
fail:
  return NULL;
}

#define NEED_INIT()                                            \
  do {                                                         \
    if (!ort) return throw_error(e, "call init() first");      \
  } while (0)

// ---- sessions -----------------------------------------------------------------------------------

static void finalize_session(napi_env e, void* data, void* hint) {
  (void)e;
  (void)hint;
  Session* s = data;
  if (!s->released) {
    ort->ReleaseSession(s->session);
    if (s->device_info) ort->ReleaseMemoryInfo(s->device_info);
  }
  free(s);
}

static Session* unwrap_session(napi_env e, napi_value v) {
  Session* s = NULL;
  if (napi_get_value_external(e, v, (void**)&s) != napi_ok || !s)
    return throw_error(e, "not a session"), NULL;
  if (s->released) return throw_error(e, "the session was released"), NULL;
  return s;
}

static napi_value CreateSession(napi_env e, napi_callback_info info) {
  NEED_INIT();
  size_t argc = 2;
  napi_value argv[2], v, result = NULL;
  OrtSessionOptions* so = NULL;
  OrtCUDAProviderOptionsV2* cuda = NULL;
  OrtSession* session = NULL;
  OrtMemoryInfo* device_info = NULL;
  char ep[16] = "cpu";
  // External data: names and views kept for the call only (onnxruntime copies them).
  char** ext_names = NULL;
  char** ext_data = NULL;
  size_t* ext_lengths = NULL;
  uint32_t ext_count = 0;
  NAPI_OK(napi_get_cb_info(e, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_error(e, "createSession(model, options)");
  if (get_named(e, argv[1], "ep", &v) && !get_string(e, v, ep, sizeof ep))
    return throw_error(e, "options.ep: 'cpu' or 'cuda'");
  if (strcmp(ep, "cpu") && strcmp(ep, "cuda"))
    return throw_error(e, "options.ep: '%s' is not supported here ('cpu' or 'cuda')", ep);
  int device_id = (int)get_int(e, argv[1], "deviceId", 0);
  if (failed(e, ort->CreateSessionOptions(&so), "session options")) goto fail;
  if (failed(e, ort->SetIntraOpNumThreads(so, (int)get_int(e, argv[1], "threads", 0)), "threads")) goto fail;
  if (failed(e, ort->SetInterOpNumThreads(so, 1), "inter-op threads")) goto fail;
  if (failed(e, ort->SetSessionExecutionMode(so, ORT_SEQUENTIAL), "execution mode")) goto fail;
  if (failed(e, ort->SetSessionLogSeverityLevel(so, 4), "log level")) goto fail;
  if (failed(e,
             ort->SetSessionGraphOptimizationLevel(
                 so, (GraphOptimizationLevel)get_int(e, argv[1], "optimization", ORT_ENABLE_ALL)),
             "optimization level"))
    goto fail;
  if (failed(e, get_bool(e, argv[1], "memPattern", 0) ? ort->EnableMemPattern(so) : ort->DisableMemPattern(so),
             "memory pattern"))
    goto fail;
  if (failed(e, get_bool(e, argv[1], "cpuArena", 0) ? ort->EnableCpuMemArena(so) : ort->DisableCpuMemArena(so),
             "cpu arena"))
    goto fail;
  if (get_named(e, argv[1], "config", &v)) {
    uint32_t n = 0;
    NAPI_OK(napi_get_array_length(e, v, &n));
    for (uint32_t i = 0; i < n; i++) {
      napi_value pair, k, val;
      char key[MAX_NAME], value[MAX_NAME];
      NAPI_OK(napi_get_element(e, v, i, &pair));
      NAPI_OK(napi_get_element(e, pair, 0, &k));
      NAPI_OK(napi_get_element(e, pair, 1, &val));
      if (!get_string(e, k, key, sizeof key) || !get_string(e, val, value, sizeof value)) {
        throw_error(e, "options.config[%u]: [key, value] strings under %d bytes", i, MAX_NAME);
        goto fail;
      }
      if (failed(e, ort->AddSessionConfigEntry(so, key, value), key)) goto fail;
    }
  }
  if (get_named(e, argv[1], "externalData", &v)) {
    NAPI_OK(napi_get_array_length(e, v, &ext_count));
    ext_names = calloc(ext_count ? ext_count : 1, sizeof *ext_names);
    ext_data = calloc(ext_count ? ext_count : 1, sizeof *ext_data);
    ext_lengths = calloc(ext_count ? ext_count : 1, sizeof *ext_lengths);
    for (uint32_t i = 0; i < ext_count; i++) {
      napi_value pair, k, d;
      size_t len = 0;
      NAPI_OK(napi_get_element(e, v, i, &pair));
      NAPI_OK(napi_get_element(e, pair, 0, &k));
      NAPI_OK(napi_get_element(e, pair, 1, &d));
      NAPI_OK(napi_get_value_string_utf8(e, k, NULL, 0, &len));
      ext_names[i] = malloc(len + 1);
      NAPI_OK(napi_get_value_string_utf8(e, k, ext_names[i], len + 1, &len));
      if (!get_bytes(e, d, (void**)&ext_data[i], &ext_lengths[i])) {
        throw_error(e, "options.externalData[%u]: [name, Uint8Array]", i);
        goto fail;
      }
    }
    if (ext_count &&
        failed(e,
               ort->AddExternalInitializersFromFilesInMemory(so, (const char* const*)ext_names, ext_data,
                                                             ext_lengths, ext_count),
               "external data"))
      goto fail;
  }
  if (!strcmp(ep, "cuda")) {
    char id[16];
    snprintf(id, sizeof id, "%d", device_id);
    const char* keys[] = {"device_id"};
    const char* values[] = {id};
    if (failed(e, ort->CreateCUDAProviderOptions(&cuda), "CUDA provider options")) goto fail;
    if (failed(e, ort->UpdateCUDAProviderOptions(cuda, keys, values, 1), "CUDA provider options")) goto fail;
    if (failed(e, ort->SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda), "CUDA provider")) goto fail;
    if (failed(e, ort->CreateMemoryInfo("Cuda", OrtDeviceAllocator, device_id, OrtMemTypeDefault, &device_info),
               "CUDA memory info"))
      goto fail;
  }
  bool is_string = false;
  napi_valuetype t;
  NAPI_OK(napi_typeof(e, argv[0], &t));
  is_string = t == napi_string;
  if (is_string) {
    char path[4096];
    if (!get_string(e, argv[0], path, sizeof path)) {
      throw_error(e, "model path too long");
      goto fail;
    }
    if (failed(e, ort->CreateSession(ort_env, path, so, &session), "create session")) goto fail;
  } else {
    void* bytes = NULL;
    size_t length = 0;
    if (!get_bytes(e, argv[0], &bytes, &length)) {
      throw_error(e, "model: a path or the model's bytes (Uint8Array)");
      goto fail;
    }
    if (failed(e, ort->CreateSessionFromArray(ort_env, bytes, length, so, &session), "create session")) goto fail;
  }
  if (!strcmp(ep, "cuda") && !cuda_host_alloc) {
    // The provider has loaded the CUDA runtime by now: pinned host buffers come from it.
    void* cudart = dlopen("libcudart.so.13", RTLD_NOW | RTLD_NOLOAD);
    if (!cudart) cudart = dlopen("libcudart.so.13", RTLD_NOW);
    if (cudart) {
      cuda_free_host = (cuda_free_host_fn)dlsym(cudart, "cudaFreeHost");
      cuda_host_alloc = cuda_free_host ? (cuda_host_alloc_fn)dlsym(cudart, "cudaHostAlloc") : NULL;
      cuda_host_unregister = (cuda_host_unregister_fn)dlsym(cudart, "cudaHostUnregister");
      cuda_get_last_error = (cuda_get_last_error_fn)dlsym(cudart, "cudaGetLastError");
      cuda_host_register = cuda_host_unregister && cuda_get_last_error
                               ? (cuda_host_register_fn)dlsym(cudart, "cudaHostRegister")
                               : NULL;
    }
  }
  Session* s = calloc(1, sizeof *s);
  s->session = session;
  s->device_info = device_info;
  session = NULL;
  device_info = NULL;
  NAPI_OK(napi_create_external(e, s, finalize_session, NULL, &result));
fail:
  for (uint32_t i = 0; ext_names && i < ext_count; i++) free(ext_names[i]);
  free(ext_names);
  free(ext_data);
  free(ext_lengths);
  if (cuda) ort->ReleaseCUDAProviderOptions(cuda);
  if (so) ort->ReleaseSessionOptions(so);
  if (session) ort->ReleaseSession(session);
  if (device_info) ort->ReleaseMemoryInfo(device_info);
  return result;
}

static napi_value names_of(napi_env e, OrtSession* session, int outputs) {
  OrtAllocator* alloc = NULL;
  size_t n = 0;
  napi_value list = NULL;
  if (failed(e, ort->GetAllocatorWithDefaultOptions(&alloc), "allocator")) return NULL;
  if (failed(e, outputs ? ort->SessionGetOutputCount(session, &n) : ort->SessionGetInputCount(session, &n), "count"))
    return NULL;
  if (napi_create_array_with_length(e, n, &list) != napi_ok) return NULL;
  for (size_t i = 0; i < n; i++) {
    char* name = NULL;
    napi_value str;
    OrtStatus* s = outputs ? ort->SessionGetOutputName(session, i, alloc, &name)
                           : ort->SessionGetInputName(session, i, alloc, &name);
    if (failed(e, s, "name")) return NULL;
    napi_create_string_utf8(e, name, NAPI_AUTO_LENGTH, &str);
    release_status(ort->AllocatorFree(alloc, name));
    napi_set_element(e, list, (uint32_t)i, str);
  }
  return list;
}

static napi_value SessionNames(napi_env e, napi_callback_info info) {
  NEED_INIT();
  size_t argc = 1;
  napi_value argv[1], result, inputs, outputs;
  napi_get_cb_info(e, info, &argc, argv, NULL, NULL);
  Session* s = argc ? unwrap_session(e, argv[0]) : NULL;
  if (!s) return NULL;
  if (!(inputs = names_of(e, s->session, 0)) || !(outputs = names_of(e, s->session, 1))) return NULL;
  napi_create_object(e, &result);
  napi_set_named_property(e, result, "inputs", inputs);
  napi_set_named_property(e, result, "outputs", outputs);
  return result;
}

static napi_value ReleaseSession(napi_env e, napi_callback_info info) {
  NEED_INIT();
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(e, info, &argc, argv, NULL, NULL);
  Session* s = argc ? unwrap_session(e, argv[0]) : NULL;
  if (!s) return NULL;
  ort->ReleaseSession(s->session);
  if (s->device_info) ort->ReleaseMemoryInfo(s->device_info);
  s->released = 1;
  return NULL;
}

// ---- values -------------------------------------------------------------------------------------

static void finalize_value(napi_env e, void* data, void* hint) {
  (void)e;
  (void)hint;
  DeviceValue* d = data;
  if (!d->released) ort->ReleaseValue(d->value);
  free(d);
}

static napi_value ReleaseValue(napi_env e, napi_callback_info info) {
  NEED_INIT();
  size_t argc = 1;
  napi_value argv[1];
  DeviceValue* d = NULL;
  napi_get_cb_info(e, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_external(e, argv[0], (void**)&d) != napi_ok || !d)
    return throw_error(e, "releaseValue(value): not a device value");
  if (!d->released) ort->ReleaseValue(d->value);
  d->released = 1;
  return NULL;
}

static void finalize_host_buffer(napi_env e, void* data, void* hint) {
  (void)e;
  if (hint)
    cuda_free_host(data);
  else
    free(data);
}

static napi_value AllocHost(napi_env e, napi_callback_info info) {
  NEED_INIT();
  size_t argc = 1;
  napi_value argv[1], result, buffer, pinned_v;
  int64_t bytes = 0;
  napi_get_cb_info(e, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int64(e, argv[0], &bytes) != napi_ok || bytes <= 0)
    return throw_error(e, "allocHost(bytes): a positive size");
  void* data = NULL;
  int pinned = 0;
  if (cuda_host_alloc && cuda_host_alloc(&data, (size_t)bytes, 0) == 0) {
    pinned = 1;
  } else if (posix_memalign(&data, 4096, (size_t)bytes) != 0) {
    return throw_error(e, "allocHost: out of memory for %lld bytes", (long long)bytes);
  }
  if (napi_create_external_arraybuffer(e, data, (size_t)bytes, finalize_host_buffer, (void*)(intptr_t)pinned,
                                       &buffer) != napi_ok) {
    if (pinned)
      cuda_free_host(data);
    else
      free(data);
    return throw_error(e, "allocHost: external array buffers are not allowed in this runtime");
  }
  napi_create_object(e, &result);
  napi_get_boolean(e, pinned, &pinned_v);
  napi_set_named_property(e, result, "buffer", buffer);
  napi_set_named_property(e, result, "pinned", pinned_v);
  return result;
}

// Page-locks memory JavaScript already owns (a SharedArrayBuffer, seen through a typed array), so
// that both threads of a rank can use it and copies to and from the GPU run at full speed. The caller
// keeps the buffer alive while it is registered and unpins it before dropping it. false: no CUDA here.
static napi_value PinHost(napi_env e, napi_callback_info info) {
  NEED_INIT();
  size_t argc = 2;
  napi_value argv[2], out;
  void* data = NULL;
  size_t length = 0;
  bool pin = true;
  napi_get_cb_info(e, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !get_bytes(e, argv[0], &data, &length) || napi_get_value_bool(e, argv[1], &pin) != napi_ok)
    return throw_error(e, "pinHost(view, pin): a typed array and whether to pin (true) or unpin (false)");
  int done = 0;
  if (cuda_host_register && length > 0) {
    int rc = pin ? cuda_host_register(data, length, CUDA_HOST_REGISTER_PORTABLE) : cuda_host_unregister(data);
    // A failed CUDA runtime call leaves its error for the next cudaGetLastError — which onnxruntime
    // checks after its own kernels, and would fail a run with it. Take it here.
    if (rc != 0) cuda_get_last_error();
    // Already registered: memory someone pinned and freed without unpinning (never this pool's own,
    // kv-buffer-pool.ts unpins before letting go). Left unpinned by us, with the error taken.
    if (pin && rc != 0 && rc != CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED)
      return throw_error(e, "cudaHostRegister of %zu bytes failed with CUDA error %d", length, rc);
    done = pin ? rc == 0 : 1;
  }
  napi_get_boolean(e, done, &out);
  return out;
}

// ---- copyBytes ----------------------------------------------------------------------------------

// memmove between two views of the same length. V8 copies into a SharedArrayBuffer element by element
// with relaxed atomics (TypedArray#set and Buffer#copy alike): 2.7 GB/s where memmove runs at 10+,
// and every byte of received K/V is copied into a shared inbox buffer (worker/chain/kv-inbox.ts).
// Needs no init(): it touches no onnxruntime.
static napi_value CopyBytes(napi_env e, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *dst = NULL, *src = NULL;
  size_t dst_len = 0, src_len = 0;
  napi_get_cb_info(e, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !get_bytes(e, argv[0], &dst, &dst_len) || !get_bytes(e, argv[1], &src, &src_len))
    return throw_error(e, "copyBytes(dst, src): two typed arrays");
  if (dst_len != src_len) return throw_error(e, "copyBytes: %zu bytes into %zu", src_len, dst_len);
  if (dst_len > 0) memmove(dst, src, dst_len);
  return NULL;
}

// ---- run ----------------------------------------------------------------------------------------

static napi_value describe_value(napi_env e, const char* name, OrtValue* value, napi_value* dims_out, int* type_out) {
  OrtTensorTypeAndShapeInfo* shape = NULL;
  size_t rank = 0;
  int64_t dims[MAX_DIMS];
  ONNXTensorElementDataType type;
  if (failed(e, ort->GetTensorTypeAndShape(value, &shape), name)) return NULL;
  int bad = failed(e, ort->GetDimensionsCount(shape, &rank), name) ||
            (rank > MAX_DIMS && (throw_error(e, "%s: more than %d dimensions", name, MAX_DIMS), 1)) ||
            failed(e, ort->GetDimensions(shape, dims, rank), name) ||
            failed(e, ort->GetTensorElementType(shape, &type), name);
  ort->ReleaseTensorTypeAndShapeInfo(shape);
  if (bad) return NULL;
  napi_create_array_with_length(e, rank, dims_out);
  for (size_t i = 0; i < rank; i++) {
    napi_value d;
    napi_create_int64(e, dims[i], &d);
    napi_set_element(e, *dims_out, (uint32_t)i, d);
  }
  *type_out = (int)type;
  return *dims_out;
}

static napi_value Run(napi_env e, napi_callback_info info) {
  NEED_INIT();
  size_t argc = 3;
  napi_value argv[3], result = NULL;
  OrtIoBinding* binding = NULL;
  OrtValue* owned[2 * MAX_IO];
  size_t owned_count = 0;
  char names[MAX_IO][MAX_NAME];
  int kinds[MAX_IO];  // 0: host allocated by onnxruntime, 1: into the caller's buffer, 2: device
  OrtValue** values = NULL;
  size_t value_count = 0;
  OrtAllocator* alloc = NULL;
  uint32_t n_feeds = 0, n_outputs = 0;
  NAPI_OK(napi_get_cb_info(e, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_error(e, "run(session, feeds, outputs)");
  Session* s = unwrap_session(e, argv[0]);
  if (!s) return NULL;
  NAPI_OK(napi_get_array_length(e, argv[1], &n_feeds));
  NAPI_OK(napi_get_array_length(e, argv[2], &n_outputs));
  if (n_feeds > MAX_IO || n_outputs > MAX_IO) return throw_error(e, "at most %d inputs and outputs", MAX_IO);
  if (failed(e, ort->CreateIoBinding(s->session, &binding), "IO binding")) goto fail;
  for (uint32_t i = 0; i < n_feeds; i++) {
    napi_value feed, v;
    char name[MAX_NAME];
    NAPI_OK(napi_get_element(e, argv[1], i, &feed));
    if (!get_named(e, feed, "name", &v) || !get_string(e, v, name, sizeof name)) {
      throw_error(e, "feeds[%u].name: a string under %d bytes", i, MAX_NAME);
      goto fail;
    }
    OrtValue* value = NULL;
    if (get_named(e, feed, "value", &v)) {
      DeviceValue* d = NULL;
      if (napi_get_value_external(e, v, (void**)&d) != napi_ok || !d || d->released) {
        throw_error(e, "feeds %s: value is not a live device value", name);
        goto fail;
      }
      value = d->value;
    } else {
      if (!(value = tensor_over(e, feed, name))) goto fail;
      owned[owned_count++] = value;
    }
    if (failed(e, ort->BindInput(binding, name, value), name)) goto fail;
  }
  for (uint32_t i = 0; i < n_outputs; i++) {
    napi_value out, v;
    NAPI_OK(napi_get_element(e, argv[2], i, &out));
    if (!get_named(e, out, "name", &v) || !get_string(e, v, names[i], MAX_NAME)) {
      throw_error(e, "outputs[%u].name: a string under %d bytes", i, MAX_NAME);
      goto fail;
    }
    if (get_named(e, out, "into", &v)) {
      OrtValue* value = tensor_over(e, v, names[i]);
      if (!value) goto fail;
      owned[owned_count++] = value;
      kinds[i] = 1;
      if (failed(e, ort->BindOutput(binding, names[i], value), names[i])) goto fail;
    } else if (get_bool(e, out, "device", 0)) {
      // On the CPU provider "the device" is onnxruntime's own host memory: the same opaque value.
      kinds[i] = 2;
      if (failed(e, ort->BindOutputToDevice(binding, names[i], s->device_info ? s->device_info : cpu_info),
                 names[i]))
        goto fail;
    } else {
      kinds[i] = 0;
      if (failed(e, ort->BindOutputToDevice(binding, names[i], cpu_info), names[i])) goto fail;
    }
  }
  if (failed(e, ort->RunWithBinding(s->session, NULL, binding), "run")) goto fail;
  if (failed(e, ort->SynchronizeBoundOutputs(binding), "synchronize outputs")) goto fail;
  if (failed(e, ort->GetAllocatorWithDefaultOptions(&alloc), "allocator")) goto fail;
  if (n_outputs && failed(e, ort->GetBoundOutputValues(binding, alloc, &values, &value_count), "outputs")) goto fail;
  if (value_count != n_outputs) {
    throw_error(e, "onnxruntime returned %zu outputs for %u bound", value_count, n_outputs);
    goto fail;
  }
  NAPI_OK(napi_create_array_with_length(e, n_outputs, &result));
  for (uint32_t i = 0; i < n_outputs; i++) {
    napi_value item, name, dims, type_v;
    int type = 0;
    OrtValue* value = values[i];
    values[i] = NULL;
    if (!describe_value(e, names[i], value, &dims, &type)) {
      ort->ReleaseValue(value);
      goto fail;
    }
    napi_create_object(e, &item);
    napi_create_string_utf8(e, names[i], NAPI_AUTO_LENGTH, &name);
    napi_create_int32(e, type, &type_v);
    napi_set_named_property(e, item, "name", name);
    napi_set_named_property(e, item, "type", type_v);
    napi_set_named_property(e, item, "dims", dims);
    if (kinds[i] == 1) {
      ort->ReleaseValue(value);  // a view of the caller's buffer, which holds the result
    } else if (kinds[i] == 2) {
      DeviceValue* d = calloc(1, sizeof *d);
      napi_value external;
      d->value = value;
      napi_create_external(e, d, finalize_value, NULL, &external);
      napi_set_named_property(e, item, "value", external);
    } else {
      // Copied into memory JavaScript owns: it can move to another thread (an external buffer
      // cannot), and a reused output buffer ("into") is the fast path anyway.
      void* data = NULL;
      void* copy = NULL;
      size_t count = 0;
      OrtTensorTypeAndShapeInfo* shape = NULL;
      napi_value ab;
      if (failed(e, ort->GetTensorMutableData(value, &data), names[i]) ||
          failed(e, ort->GetTensorTypeAndShape(value, &shape), names[i])) {
        ort->ReleaseValue(value);
        goto fail;
      }
      int bad = failed(e, ort->GetTensorShapeElementCount(shape, &count), names[i]);
      ort->ReleaseTensorTypeAndShapeInfo(shape);
      size_t bytes = count * element_bytes(type);
      if (bad || napi_create_arraybuffer(e, bytes, &copy, &ab) != napi_ok) {
        if (!bad) throw_error(e, "%s: no memory for %zu bytes", names[i], bytes);
        ort->ReleaseValue(value);
        goto fail;
      }
      if (bytes) memcpy(copy, data, bytes);
      ort->ReleaseValue(value);
      napi_set_named_property(e, item, "data", ab);
    }
    napi_set_element(e, result, i, item);
  }
fail:
  if (values) {
    for (size_t i = 0; i < value_count; i++)
      if (values[i]) ort->ReleaseValue(values[i]);
    release_status(ort->AllocatorFree(alloc, values));
  }
  for (size_t i = 0; i < owned_count; i++) ort->ReleaseValue(owned[i]);
  if (binding) ort->ReleaseIoBinding(binding);
  return result;
}

// ---- module -------------------------------------------------------------------------------------

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"init", NULL, Init, NULL, NULL, NULL, napi_default, NULL},
      {"createSession", NULL, CreateSession, NULL, NULL, NULL, napi_default, NULL},
      {"sessionNames", NULL, SessionNames, NULL, NULL, NULL, napi_default, NULL},
      {"run", NULL, Run, NULL, NULL, NULL, napi_default, NULL},
      {"allocHost", NULL, AllocHost, NULL, NULL, NULL, napi_default, NULL},
      {"pinHost", NULL, PinHost, NULL, NULL, NULL, napi_default, NULL},
      {"copyBytes", NULL, CopyBytes, NULL, NULL, NULL, napi_default, NULL},
      {"releaseSession", NULL, ReleaseSession, NULL, NULL, NULL, napi_default, NULL},
      {"releaseValue", NULL, ReleaseValue, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof *props, props);
  return exports;
}
