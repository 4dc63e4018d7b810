/** Protocol constants, in a module of their own so that workers and clients load no schema code. */
export const PROTOCOL_VERSION = 1;
export const WORKER_PATH = '/v1/worker';
