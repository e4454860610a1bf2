<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\local;

/**
 * Signs outbound event bodies: lower-case hex HMAC-SHA256 of the exact body bytes.
 *
 * The receiver reads the value from the X-Moodle-Signature header (docs/plugin-contract.md, section 9).
 * This class has no Moodle dependency.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class signer {

    /** @var string The HTTP header that carries the signature. */
    public const HEADER = 'X-Moodle-Signature';

    /** @var string The shared secret; never logged. */
    private string $secret;

    /**
     * Create a signer.
     *
     * @param string $secret The shared secret.
     * @throws \InvalidArgumentException If the secret is empty.
     */
    public function __construct(string $secret) {
        if ($secret === '') {
            throw new \InvalidArgumentException('The signing secret must not be empty');
        }
        $this->secret = $secret;
    }

    /**
     * The signature of a body.
     *
     * @param string $body The exact bytes that will be sent.
     * @return string 64 lower-case hex characters.
     */
    public function sign(string $body): string {
        return hash_hmac('sha256', $body, $this->secret);
    }

    /**
     * The complete header line for a body.
     *
     * @param string $body The exact bytes that will be sent.
     * @return string For example "X-Moodle-Signature: 5bdc...".
     */
    public function header(string $body): string {
        return self::HEADER . ': ' . $this->sign($body);
    }

    /**
     * Check a signature in constant time; a "sha256=" prefix is accepted.
     *
     * @param string $body The body as received.
     * @param string $signature The signature as received.
     * @return bool True when the signature matches.
     */
    public function verify(string $body, string $signature): bool {
        $signature = strtolower(trim($signature));
        if (str_starts_with($signature, 'sha256=')) {
            $signature = substr($signature, 7);
        }
        return hash_equals($this->sign($body), $signature);
    }
}
