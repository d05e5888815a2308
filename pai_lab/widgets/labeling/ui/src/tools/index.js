// @ts-check
// One tool per question type.
import { BoxTool } from './box.js';
import { ChoiceTool } from './choice.js';
import { RelationTool } from './relation.js';
import { SegmentTool } from './segment.js';
import { SpanTool } from './span.js';
import { TextTool } from './text.js';

const TOOLS = {
  single: ChoiceTool,
  multi: ChoiceTool,
  text: TextTool,
  boxes: BoxTool,
  spans: SpanTool,
  relations: RelationTool,
  segments: SegmentTool
};

/** @param {import("../app.js").Labeler} app @param {any} q @param {number} qi @param {any} item */
export function makeTool(app, q, qi, item) {
  return new TOOLS[q.type](app, q, qi, item);
}
