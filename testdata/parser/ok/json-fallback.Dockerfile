FROM alpine
CMD ['single', 'quotes']
CMD ["unterminated"
CMD ["trailing"] text
CMD ["a\tb", "\u00e9\ud83d\ude00", "\ud800"]
COPY [ "a", "b" ]
COPY [a, b]
RUN [1e999]
