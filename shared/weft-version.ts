// weft's own version: `weft version` prints it, and so does a plugin run by hand.
export const WEFT_VERSION = "0.1.0";
