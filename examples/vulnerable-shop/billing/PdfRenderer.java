package shop.billing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;

/**
 * Renders invoices to PDF with wkhtmltopdf. The program is started with a fixed argument
 * list (no shell), file names carry a SecureRandom nonce and checksums are SHA-256.
 */
public class PdfRenderer {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final long TIMEOUT_SECONDS = 30;

    private final Path workDir;

    public PdfRenderer(Path workDir) {
        this.workDir = workDir;
    }

    public Path render(Invoice invoice) throws IOException, InterruptedException {
        String name = "invoice-" + invoice.id() + "-" + nonce();
        Path html = workDir.resolve(name + ".html");
        Path pdf = workDir.resolve(name + ".pdf");
        Files.writeString(html, toHtml(invoice), StandardCharsets.UTF_8);

        Process process = new ProcessBuilder("wkhtmltopdf", "--quiet", html.toString(), pdf.toString())
                .redirectErrorStream(true)
                .start();
        if (!process.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new IOException("wkhtmltopdf timed out");
        }
        if (process.exitValue() != 0) {
            throw new IOException("wkhtmltopdf exited with " + process.exitValue());
        }
        Files.deleteIfExists(html);
        return pdf;
    }

    public static String checksum(Path file) throws IOException {
        try {
            MessageDigest sha256 = MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(sha256.digest(Files.readAllBytes(file)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is not available", e);
        }
    }

    private static String nonce() {
        byte[] bytes = new byte[8];
        RANDOM.nextBytes(bytes);
        return HexFormat.of().formatHex(bytes);
    }

    static String escape(String text) {
        StringBuilder out = new StringBuilder(text.length());
        for (char c : text.toCharArray()) {
            switch (c) {
                case '&' -> out.append("&amp;");
                case '<' -> out.append("&lt;");
                case '>' -> out.append("&gt;");
                case '"' -> out.append("&quot;");
                default -> out.append(c);
            }
        }
        return out.toString();
    }

    private static String toHtml(Invoice invoice) {
        return "<!doctype html><html><head><meta charset=\"utf-8\"><title>Invoice "
                + escape(invoice.number())
                + "</title></head><body><h1>Invoice "
                + escape(invoice.number())
                + "</h1><p>Customer: "
                + escape(invoice.customerId())
                + "</p><p>Total: "
                + String.format("%.2f EUR", invoice.totalCents() / 100.0)
                + "</p></body></html>";
    }
}
