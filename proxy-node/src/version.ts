// The version is package.json's: the bundle inlines it, ts-node reads it.
import { version } from "../package.json";

export const VERSION: string = version;
