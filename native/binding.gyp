{
  "targets": [
    {
      "target_name": "jfe_native",
      "sources": [
        "src/addon.cc",
        "src/conn_table.cc",
        "src/diag.cc",
        "src/errors.cc",
        "src/memory.cc",
        "src/rlimit.cc",
        "src/steer.cc",
        "src/sockets.cc",
        "src/tcp.cc",
        "src/plane/poller.cc",
        "src/plane/listener.cc",
        "src/plane/dial.cc",
        "src/plane/conn.cc",
        "src/plane/core.cc",
        "src/plane/relay.cc",
        "src/plane/relay_testing.cc",
        "src/plane/plane.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "../bpf",
        "../bpf/.output"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "libraries": ["-lbpf", "-lelf", "-lz"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "configurations": {
        "Sanitize": {
          "inherit_from": ["Release"],
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address,undefined"]
        }
      }
    }
  ]
}
