export { ManageClient } from './api-client.js';
export { applyConfig, type Change, diffConfig } from './apply.js';
export { type ConfigFile, readConfigFile } from './config-file.js';
