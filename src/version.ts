/** airunner's version, printed by `airunner --version`. */
export const VERSION = "0.1.0";
