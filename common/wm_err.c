#include "wm_err.h"

const char *
wm_strerror(int err)
{
	switch (err) {
#define WM_ERR_CASE(name, value, text) \
	case value:                    \
		return text;
		WM_ERR_TABLE(WM_ERR_CASE)
#undef WM_ERR_CASE
	}
	return "unknown error";
}
