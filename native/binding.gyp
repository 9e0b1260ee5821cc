{
  "targets": [
    {
      "target_name": "fdpass",
      "sources": ["fdpass.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
