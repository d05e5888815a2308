// @ts-check
// Fixed numbers and names the labeler's modules share.

export const PALETTE = [
  '#1a73e8',
  '#e8710a',
  '#188038',
  '#d93025',
  '#9334e6',
  '#007b83',
  '#b06000',
  '#c5221f',
  '#3949ab',
  '#6d4c41',
  '#00897b',
  '#5e35b1'
];
export const NUMBER_KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '0'];
// Items prepared ahead of the current one: images come sized to the view (tens of kB), so the
// bytes of a whole package fit, and the next few are kept decoded (a few MB each); audio and
// video come as they are, so only a few are fetched ahead.
export const DECODE_AHEAD = 8;
export const FETCH_AHEAD = { image: 200, other: 4 };
export const MEDIA_FETCHES = 3; // fetches in flight at once
export const TEXT_LIMIT = 50000; // code points rendered for span marking
// iTAG's built-in question titles, shown in English (the export keeps the originals)
export const TITLES = {
  单选: 'Choose one label',
  多选: 'Choose labels',
  文本内容: 'Entities',
  音频识别结果: 'Transcript',
  目标检测标签配置: 'Boxes',
  OCR标签配置: 'Text boxes'
};
