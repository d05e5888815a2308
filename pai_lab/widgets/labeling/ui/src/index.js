// @ts-check
// pai_lab labeler: one anywidget front end for every labeling template.
//
// The kernel side opens a package and stores answers on the server; this module draws the item,
// takes keys and mouse input, and keeps the next items' media fetched and decoded so moving on
// never waits for the kernel or the network. Built into ../static/labeler.js by esbuild.
import { Labeler } from './app.js';

export default {
  /** @param {{ model: any, el: HTMLElement & { __plLabeler?: Labeler } }} view */
  render({ model, el }) {
    const app = new Labeler(model, el);
    el.__plLabeler = app; // tests and benchmarks read the labeler's state through the element
    return () => app.destroy();
  }
};
