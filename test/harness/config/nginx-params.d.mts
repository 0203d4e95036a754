// Types for nginx-params.mjs (plain JavaScript, so the benchmarks can import it too).
export declare const DEBIAN_FASTCGI_PARAMS: string;
export declare const DEBIAN_SCGI_PARAMS: string;
