/*
 * curl.h - drive a libcurl easy handle from a coroutine: the transfer runs
 * on the worker's event loop through curl's multi_socket API, so thousands
 * of transfers share one thread without blocking it.
 */
#ifndef CORO_CURL_H
#define CORO_CURL_H

#include <curl/curl.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Perform the transfer configured on easy (as curl_easy_perform) and park
 * until it completes. Returns the transfer's CURLcode (CURLE_OK == 0), or
 * -1 with errno ECANCELED when the coroutine is cancelled (the transfer is
 * aborted and removed). The handle stays owned by the caller and can be
 * reused. Coroutine only; may yield. Do not set CURLOPT_SHARE or multi
 * options on easy that conflict with the worker's multi handle.
 * CURLOPT_NOSIGNAL is set on easy; CURLOPT_PRIVATE is borrowed during the
 * transfer and restored before returning.
 * curl's callbacks (write, read, header, progress...) run on the worker's
 * event loop, not in the calling coroutine: they must not yield or block
 * (no blocking chan_send, no coro_* I/O); buffer and return.
 */
int coro_curl_perform(CURL *easy);

#ifdef __cplusplus
}
#endif
#endif
