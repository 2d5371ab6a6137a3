/* Entry point of the native addon: registers the functions of page_hash.c, write_behind.c, page_fill.c, page_read.c, page_decide.c and entry_check.c. */
#include "addon.h"

napi_value fail(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* The elements of typed array v when it is of type want (len counts elements). */
static int typed_of(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) != napi_ok) return 0;
  return type == want;
}

int bytes_of(napi_env env, napi_value v, uint8_t **data, size_t *len) { return typed_of(env, v, napi_uint8_array, (void **)data, len); }

int int32s_of(napi_env env, napi_value v, int32_t **data, size_t *len) { return typed_of(env, v, napi_int32_array, (void **)data, len); }

NAPI_MODULE_INIT() {
  static const struct { const char *name; napi_callback cb; } fns[] = {
    { "digest", page_hash_digest },
    { "writeBehindOpen", write_behind_open },
    { "writeBehindWrite", write_behind_write },
    { "writeBehindWriteBlocks", write_behind_write_blocks },
    { "writeBehindSync", write_behind_sync },
    { "writeBehindWait", write_behind_wait },
    { "writeBehindClose", write_behind_close },
    { "fill", page_fill },
    { "readPages", page_read },
    { "decidePages", page_decide },
    { "firstEntryMismatch", entry_check_first_mismatch },
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }

  return exports;
}
